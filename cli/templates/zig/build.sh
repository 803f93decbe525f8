#!/usr/bin/env sh
# Builds {{name}}.wasm (a core module, ABI v1) with Zig 0.17 (`zig` on the
# PATH, or PyPI's ziglang: pip install ziglang==0.17.1).
set -eu
cd "$(dirname "$0")"
if command -v zig >/dev/null; then
    set -- zig
elif python3 -c "import ziglang" 2>/dev/null; then
    set -- python3 -m ziglang
else
    echo "build.sh: zig not found (install Zig 0.17, or: pip install ziglang==0.17.1)" >&2
    exit 1
fi
"$@" build-exe -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseFast -fstrip \
    --dep wasq -Mroot={{name}}.zig -Mwasq=wasq.zig -femit-bin={{name}}.wasm
rm -f {{name}}.wasm.o
echo "built {{name}}.wasm"
