// Package fakestart is the start of the fake backends in rpc's and
// session's tests: it "makes" one resource per step, can be held half way,
// and removes what it made when it fails or is cancelled, as a real
// backend must.
package fakestart

import (
	"context"

	"github.com/bottle-dev/bottle/backend"
)

// Steps are the steps of a fake start, in order.
var Steps = []string{"runtime", "image", "networks", "containers"}

// Start is one fake start's behaviour and what it tells the fake backend.
type Start struct {
	// Gate, when not nil, holds the start after its first step until the
	// gate is closed or the start is cancelled.
	Gate <-chan struct{}
	// Err, when not nil, fails the start after its steps.
	Err error
	// Progress, when not nil, is told of each step before it is made.
	Progress backend.Progress
	// Made, when not nil, is told of each step's resource once made.
	Made func(step string)
	// Removed, when not nil, is told when a failed start has removed what
	// it made.
	Removed func()
}

// Run walks the steps. It returns nil when the start succeeds; otherwise
// the cancellation or Err, after Removed.
func (s Start) Run(ctx context.Context) error {
	for i, name := range Steps {
		if err := ctx.Err(); err != nil {
			return s.fail(err)
		}
		if s.Progress != nil {
			s.Progress(backend.Step{Name: name, Message: "doing " + name, Done: i, Total: len(Steps)})
		}
		if s.Made != nil {
			s.Made(name)
		}
		if i == 0 && s.Gate != nil {
			select {
			case <-s.Gate:
			case <-ctx.Done():
				return s.fail(ctx.Err())
			}
		}
	}
	if s.Err != nil {
		return s.fail(s.Err)
	}
	return nil
}

func (s Start) fail(err error) error {
	if s.Removed != nil {
		s.Removed()
	}
	return err
}
