// Package testwait waits, in tests, for a state that other goroutines
// reach, instead of sleeping for a guessed time.
package testwait

import (
	"testing"
	"time"
)

// poll is how often Until checks a condition nobody announces changes of.
const poll = time.Millisecond

// Until waits until cond holds, checking it at once and then every
// millisecond, and fails t, naming what it waited for, when timeout passes
// first.
func Until(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	wait(t, what, timeout, func() (bool, <-chan struct{}) { return cond(), nil })
}

// UntilChanged is Until for a state whose changes are announced: check
// returns whether the state holds and a channel closed at its next change,
// both read at the same instant (under the lock that guards the state), so
// a change between the two cannot be missed.
func UntilChanged(t testing.TB, what string, timeout time.Duration, check func() (ok bool, changed <-chan struct{})) {
	t.Helper()
	wait(t, what, timeout, check)
}

func wait(t testing.TB, what string, timeout time.Duration, check func() (bool, <-chan struct{})) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var tick <-chan time.Time
	for {
		ok, changed := check()
		if ok {
			return
		}
		if changed == nil && tick == nil {
			ticker := time.NewTicker(poll)
			defer ticker.Stop()
			tick = ticker.C
		}
		select {
		case <-changed:
		case <-tick:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}
