#!/usr/bin/env bash
# Configures (once) and builds posta-server into BUILD_DIR (default: build).
# Extra arguments go to `meson setup`, e.g. --buildtype=release.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ]; then
  meson setup "$build_dir" --werror "$@"
fi
ninja -C "$build_dir"
