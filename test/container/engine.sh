#!/usr/bin/env bash
# Start a private Docker engine (Debian's docker.io) for the container test, loopback only:
# --bridge=none --iptables=false, its own data root (kept in $TOOLS_DIR so the stand-in base image
# and build cache survive between runs), its own socket and pid file.
#
# usage: engine.sh start   -> prints DOCKER_HOST=unix://… on success; exit 1 (with the reason on
#                              stderr) when no engine can start
#        engine.sh stop
set -euo pipefail

TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/cachegate-tools}
RUN_DIR=${ENGINE_RUN_DIR:-/tmp/cachegate-dockerd}
SOCK="$RUN_DIR/docker.sock"
PIDFILE="$RUN_DIR/dockerd.pid"
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || true)}

case "${1:-}" in
  start)
    mkdir -p "$RUN_DIR" "$TOOLS_DIR/docker-data"
    if [ -S "$SOCK" ] && DOCKER_HOST="unix://$SOCK" "$DOCKER" info >/dev/null 2>&1; then
      echo "DOCKER_HOST=unix://$SOCK"
      exit 0
    fi
    command -v dockerd >/dev/null || { echo "dockerd is not installed (apt-get install docker.io)" >&2; exit 1; }
    [ -n "$DOCKER" ] || { echo "no docker CLI" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "dockerd needs root" >&2; exit 1; }
    # containerd comes with docker.io; dockerd starts its own when none is given.
    dockerd --bridge=none --iptables=false --ip6tables=false \
      --data-root "$TOOLS_DIR/docker-data" --exec-root "$RUN_DIR/exec" \
      --pidfile "$PIDFILE" --host "unix://$SOCK" \
      >"$RUN_DIR/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
      if DOCKER_HOST="unix://$SOCK" "$DOCKER" info >/dev/null 2>&1; then
        echo "DOCKER_HOST=unix://$SOCK"
        exit 0
      fi
      if ! kill -0 $! 2>/dev/null; then break; fi
      sleep 1
    done
    echo "dockerd did not start: $(tail -n 3 "$RUN_DIR/dockerd.log" | tr '\n' ' ')" >&2
    [ -s "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null || true
    exit 1
    ;;
  stop)
    if [ -s "$PIDFILE" ]; then
      pid=$(cat "$PIDFILE")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 1; done
      echo "dockerd $pid did not stop in 30 s" >&2
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac
