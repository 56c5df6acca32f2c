package testwait_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/testwait"
)

// recorder is a testing.TB whose Fatalf records the failure and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

// run calls wait with a recorder and returns what it failed with.
func run(wait func(testing.TB)) (failed string) {
	r := &recorder{}
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
		failed = r.failed
	}()
	wait(r)
	return ""
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		time.Sleep(20 * time.Millisecond)
		n.Store(1)
	}()
	if failed := run(func(tb testing.TB) {
		testwait.Until(tb, "n", time.Minute, func() bool { return n.Load() == 1 })
	}); failed != "" {
		t.Fatal(failed)
	}
}

func TestUntilFailsNamingWhatItWaitedFor(t *testing.T) {
	start := time.Now()
	failed := run(func(tb testing.TB) {
		testwait.Until(tb, "the moon", 30*time.Millisecond, func() bool { return false })
	})
	if !strings.Contains(failed, "waiting for the moon") {
		t.Errorf("failed with %q, want it to name what it waited for", failed)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("gave up after %v, before its timeout", d)
	}
}

// TestUntilChangedWakesOnTheAnnouncedChange holds the state behind a lock
// with a channel closed at each change, as the integration tests' editor
// does, and never polls: only the announcement can wake the wait.
func TestUntilChangedWakesOnTheAnnouncedChange(t *testing.T) {
	var (
		mu      sync.Mutex
		value   int
		changed = make(chan struct{})
		checks  atomic.Int32
	)
	go func() {
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			value++
			close(changed)
			changed = make(chan struct{})
			mu.Unlock()
		}
	}()
	if failed := run(func(tb testing.TB) {
		testwait.UntilChanged(tb, "value 3", time.Minute, func() (bool, <-chan struct{}) {
			checks.Add(1)
			mu.Lock()
			defer mu.Unlock()
			return value == 3, changed
		})
	}); failed != "" {
		t.Fatal(failed)
	}
	if n := checks.Load(); n > 4 {
		t.Errorf("checked %d times for 3 changes, want at most 4 (it polled)", n)
	}
}

func TestUntilChangedFailsWhenNothingChanges(t *testing.T) {
	never := make(chan struct{})
	failed := run(func(tb testing.TB) {
		testwait.UntilChanged(tb, "a change", 20*time.Millisecond, func() (bool, <-chan struct{}) { return false, never })
	})
	if !strings.Contains(failed, "waiting for a change") {
		t.Errorf("failed with %q, want a timeout naming a change", failed)
	}
}
