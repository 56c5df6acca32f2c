#!/usr/bin/env bash
# Runs every test against the real engine, after scripts/setup.sh has made
# sure there is one (with gVisor) and the offline images. A missing engine
# is a failure, never a skip.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh"
cd "$repo"
export PATH=$PATH:/usr/local/go/bin
unformatted=$(gofmt -l $(git ls-files '*.go'))
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted" >&2; exit 1; }
go vet ./...
/usr/local/bin/staticcheck ./...
# The integration tests render pty bytes with @xterm/headless, the emulator
# VS Code's terminal uses.
[ -d integration/testdata/xterm/node_modules/@xterm/headless ] ||
  npm ci --prefix integration/testdata/xterm --no-audit --no-fund --loglevel=error
# One package at a time: several packages' tests reap orphans (a new
# server does at start) and one restarts the daemon; running them side by
# side would make them judge each other's bottles.
go test -p 1 -count=1 -timeout 25m "$@" ./...

# The VS Code extension: unit, integration against the real server, and
# end to end in code-server driven through Chromium.
extension/scripts/test.sh

# Fuzz targets, each for a bounded time (the seeds run in go test above).
fuzztime=${BOTTLE_FUZZTIME:-10s}
for target in rpc:FuzzStream rpc:FuzzParams manifest:FuzzParse egress:FuzzPolicy egress:FuzzDLP egress:FuzzClientHello hostcopy:FuzzExtract; do
  go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s "./${target%%:*}/"
done
