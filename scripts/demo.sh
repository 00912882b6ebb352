#!/usr/bin/env bash
# The demo: installs what is needed, builds, and runs posta-server on
# 127.0.0.1:8080 with two identities (arne, marcus) whose state lives in
# demo/state inside this checkout. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh

cat <<'TRY'

posta-server is starting on 127.0.0.1:8080 with identities arne and marcus.
Try, from another terminal:

  curl -s -H 'Host: arne.local' http://127.0.0.1:8080/.well-known/posta
  curl -s -H 'Host: marcus.local' http://127.0.0.1:8080/.well-known/posta
  curl -s --resolve arne.local:8080:127.0.0.1 http://arne.local:8080/.well-known/posta
  curl -si -H 'Host: nobody.local' http://127.0.0.1:8080/      # 404 from the supervisor
  build/posta-server check --manifest demo/identities.toml --config demo/posta.toml

Reload the manifest after editing demo/identities.toml: kill -HUP <pid of posta-server>

TRY
exec build/posta-server serve --listen 127.0.0.1:8080 \
  --manifest demo/identities.toml --config demo/posta.toml
