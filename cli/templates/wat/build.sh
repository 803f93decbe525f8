#!/usr/bin/env sh
# Nothing to build: wasqd (and `wasq plugin test`) load {{name}}.wat as it is.
echo "{{name}}.wat needs no build: copy it with {{name}}.toml into the plugins directory"
