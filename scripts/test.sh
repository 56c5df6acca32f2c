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
go test -count=1 -timeout 25m "$@" ./...
