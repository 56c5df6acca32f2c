#!/usr/bin/env bash
# Prepares the machine, then starts a bottle on the built-in default
# manifest (Claude Code under gVisor when available) and runs the agent in
# this terminal. Extra arguments go to "bottle-rpc run".
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh"
exec "$repo/bin/bottle-rpc" run claude "$@"
