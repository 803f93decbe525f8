#!/usr/bin/env sh
# Builds {{name}}.wasm (a core module, ABI v1) with clang and wasi-libc
# (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32).
set -eu
cd "$(dirname "$0")"
"${CC:-clang}" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
    -I . -o {{name}}.wasm {{name}}.c
echo "built {{name}}.wasm"
