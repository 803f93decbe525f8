#!/usr/bin/env sh
# Builds {{name}}.wasm (a component of wit/plugin.wit) with componentize-py
# (PyPI: pip install componentize-py==0.25.1).
set -eu
cd "$(dirname "$0")"
command -v componentize-py >/dev/null || {
    echo "build.sh: componentize-py not found (pip install componentize-py==0.25.1)" >&2
    exit 1
}
componentize-py --quiet --wit-path wit --world batch-consumer componentize --python-path . {{crate}} \
    --output {{name}}.wasm
rm -rf __pycache__
echo "built {{name}}.wasm"
