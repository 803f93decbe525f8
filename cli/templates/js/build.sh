#!/usr/bin/env sh
# Builds {{name}}.wasm (a component of wit/plugin.wit) with componentize-js (npm).
set -eu
cd "$(dirname "$0")"
[ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund --loglevel=error
node_modules/.bin/componentize-js {{name}}.js --wit wit --world-name batch-consumer \
    --disable stdio random clocks http fetch-event --out {{name}}.wasm >/dev/null
echo "built {{name}}.wasm"
