#!/usr/bin/env bash
# Prints every performance figure of the project, each next to a baseline
# measured in the same run (see BENCHMARKS.md). Takes about 15 minutes.
#   ROUNDS=N   iterations per benchmark (default 5)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh"
cd "$repo"
export PATH=$PATH:/usr/local/go/bin
rounds=${ROUNDS:-5}
echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(docker version --format 'Docker {{.Server.Version}}')"
bench() { go test -p 1 -run '^$' -bench "$1" -benchtime "${rounds}x" "$2" | grep -E '^(Benchmark|--- FAIL|FAIL|\s+\S+_test.go)'; }
bench 'StartTeardownAgainstSeedCLI|ConcurrentStarts|TTYExec' ./dockerbottle/
bench 'Proxy|Egress' ./dockerbottle/ || true
bench 'Approval|PolicyChange' ./egress/
bench . ./integration/
