#!/usr/bin/env sh
# Builds {{name}}.wasm (a core module, ABI v1) with AssemblyScript (npm).
set -eu
cd "$(dirname "$0")"
[ -x node_modules/.bin/asc ] || npm install --no-audit --no-fund --loglevel=error
node_modules/.bin/asc {{name}}.ts --outFile {{name}}.wasm --optimize --use abort=
echo "built {{name}}.wasm"
