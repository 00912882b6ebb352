#!/usr/bin/env bash
# Installs what posta-server needs to build and test, from Debian's packages
# only (Debian 12). Run as root. Used by the README's commands and by CI.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config python3
  libuv1-dev node-llhttp libtomlplusplus-dev libsqlite3-dev libsodium-dev
  libcli11-dev doctest-dev nlohmann-json3-dev libcurl4-openssl-dev libseccomp-dev libssl-dev
  openssl   # tests/e2e/test_tls.py makes its CA and certificates with it
  curl procps
  haproxy   # tests/e2e/test_proxy.py, test_scale_out.py: a real front sending PROXY v2
  pebble dehydrated   # tests/e2e/test_acme.py: an ACME server and client, HTTP-01 in webroot mode
  chromium python3-websocket   # tests/e2e/test_browser.py: the web app in a real browser, over DevTools
  systemd                         # systemd-analyze: tests check contrib/'s unit against it
  clang libclang-rt-14-dev llvm   # fuzz/: libFuzzer, clang's sanitizers, readable stacks
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
