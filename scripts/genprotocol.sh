#!/bin/sh
# Regenerates the protocol's files from the rpc package's types and method
# registry: extension/src/protocol.ts, protocol.schema.json and the tables
# of protocol.md. rpc/internal/protogen's test fails when they are stale.
set -eu
cd "$(dirname "$0")/.."
exec go run ./rpc/internal/protogen
