// Package integration drives the real bottle-rpc binary over its stdio
// JSON-RPC protocol against the real Docker engine, the way an editor
// does: a fake editor in the spirit of gopls's integration tests. It has
// no code outside its tests.
package integration
