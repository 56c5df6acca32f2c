//go:build !linux

package egress

import "errors"

// BlockEmbeddedDNS is only implemented on Linux, where containers run.
func BlockEmbeddedDNS() error {
	return errors.New("egress: blocking the embedded DNS needs Linux")
}
