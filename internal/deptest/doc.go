// Package deptest holds the test of the import rules between the module's
// packages: the direction of imports of README.md's Layout table, in the
// spirit of tailscale's tstest/deptest. It has no code outside its tests.
package deptest
