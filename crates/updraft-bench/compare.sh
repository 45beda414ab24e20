#!/usr/bin/env bash
# The comparison table of docs/performance.md in one command: the same component
# (examples/hello) served by Updraft, by Updraft with instance reuse and by
# `wasmtime serve`, each as a ratio to a raw hyper server measured in the same run.
#
# Installs `wasmtime-cli` from crates.io, at the version of wasmtime that Updraft links
# (read from Cargo.lock), into target/bench-tools the first time (a release build of
# about ten minutes on two cores). Arguments go to updraft-bench, e.g.
# `--connections 1,32,256 --duration 5`.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(awk '/^name = "wasmtime"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$version" ]; then
  echo "compare.sh: no wasmtime in Cargo.lock" >&2
  exit 1
fi
tools=target/bench-tools
if ! "$tools/bin/wasmtime" --version 2>/dev/null | grep -q "^wasmtime $version "; then
  echo "installing wasmtime-cli $version from crates.io into $tools" >&2
  cargo install --quiet --locked --root "$tools" --version "=$version" wasmtime-cli
fi
cargo build --release --quiet -p updraft -p updraft-bench
exec target/release/updraft-bench --load-only --wasmtime "$tools/bin/wasmtime" "$@"
