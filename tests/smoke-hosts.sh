#!/usr/bin/env bash
# Smoke test by name: adds arne.local and marcus.local to /etc/hosts, starts
# posta-server with the demo manifest (state in a temporary folder) and
# fetches both identity documents with curl, as a user would.
# Needs root for /etc/hosts; exits 77 (skipped) otherwise.
set -euo pipefail
binary=${1:-${POSTA_SERVER:-build/posta-server}}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ] || [ ! -w /etc/hosts ]; then
  echo "skipped: needs root to edit /etc/hosts"
  exit 77
fi
for name in arne.local marcus.local; do
  grep -qE "^127\.0\.0\.1[[:space:]].*\b$name\b" /etc/hosts || echo "127.0.0.1 $name" >> /etc/hosts
done

tmp=$(mktemp -d)
log="$tmp/posta.log"
# Keeps the script's own exit status: how the daemon ends is not the verdict.
cleanup() {
  local status=$?
  if [ -n "${pid:-}" ]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

printf 'state_dir = "%s/state"\ncontrol_socket = "%s/control.sock"\noutbound_allow = ["127.0.0.0/8", "::1/128"]\n' "$tmp" "$tmp" > "$tmp/posta.toml"
# The log exists before the daemon starts: the background job opens it
# only when it runs, and the loop below may read it first.
: > "$log"
"$binary" serve --listen 127.0.0.1:0 --manifest "$here/demo/identities.toml" --config "$tmp/posta.toml" 2> "$log" &
pid=$!

port=
for _ in $(seq 1 500); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n1)
  if [ -n "$port" ] && [ "$(grep -c ': worker [0-9]* ready' "$log")" -ge 2 ]; then break; fi
  sleep 0.02
done
[ -n "$port" ] || { cat "$log"; echo "posta-server did not start"; exit 1; }

for name in arne marcus; do
  doc=$(curl -sf "http://$name.local:$port/.well-known/posta")
  echo "$name.local -> $doc"
  echo "$doc" | grep -q "\"url\":\"http://$name.local:8080\"" || { echo "wrong document for $name.local"; exit 1; }
done
echo "smoke: both identities answered by name"
