#!/usr/bin/env sh
# Builds {{name}}.wasm (a core module, ABI v1) with the Rust toolchain.
set -eu
cd "$(dirname "$0")"
rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
cargo build --quiet --release --target wasm32-wasip1
cp target/wasm32-wasip1/release/{{crate}}.wasm {{name}}.wasm
echo "built {{name}}.wasm"
