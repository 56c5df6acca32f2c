//go:build !linux

package dnsguard

import "errors"

// Block is only implemented on Linux, where containers run.
func Block() error {
	return errors.New("dnsguard: blocking the embedded DNS needs Linux")
}
