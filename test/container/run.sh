#!/usr/bin/env bash
# npm run test:container: start a private Docker engine, make sure node:24-bookworm-slim exists
# (a stand-in built by make-base-image.sh, since Docker Hub is out of reach), then run the
# container test. When no engine can start, it says why and exits 0: everything else still ran.
set -euo pipefail
cd "$(dirname "$0")/../.."
export TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/cachegate-tools}
export DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || echo docker)}

if ! command -v docker-compose >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null) \
      || echo "test:container: could not install docker.io/docker-compose/debootstrap"
  fi
fi

started=$(date +%s)
if ! engine=$(bash test/container/engine.sh start 2>&1); then
  echo "test:container: SKIPPED: no container engine could start: ${engine}"
  exit 0
fi
export "${engine##*$'\n'}"   # DOCKER_HOST=unix://…
trap 'bash test/container/engine.sh stop || true' EXIT

bash test/container/make-base-image.sh node:24-bookworm-slim
npx vitest run --config test/container/vitest.config.ts
echo "test:container: done in $(( $(date +%s) - started )) s"
