package fakestart_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/internal/fakestart"
	"github.com/bottle-dev/bottle/internal/testwait"
)

// log records what a start tells its fake backend, in order.
type log struct {
	mu     sync.Mutex
	events []string
}

func (l *log) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *log) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *log) start(gate chan struct{}, err error) fakestart.Start {
	return fakestart.Start{
		Gate:     gate,
		Err:      err,
		Progress: func(s backend.Step) { l.add("step " + s.Name) },
		Made:     func(step string) { l.add("made " + step) },
		Removed:  func() { l.add("removed") },
	}
}

var errBoom = errors.New("boom")

func TestRunMakesEveryStepAndRemovesThemOnlyWhenItFails(t *testing.T) {
	every := []string{"step runtime", "made runtime", "step image", "made image", "step networks", "made networks", "step containers", "made containers"}
	tests := []struct {
		name    string
		err     error
		wantErr error
		want    []string
	}{
		{"a start", nil, nil, every},
		{"a failing start", errBoom, errBoom, append(slices.Clone(every), "removed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l log
			if err := l.start(nil, tt.err).Run(context.Background()); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tt.wantErr)
			}
			if got := l.get(); !slices.Equal(got, tt.want) {
				t.Errorf("events = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRunHeldAtTheGateRemovesWhatItMadeWhenCancelled(t *testing.T) {
	var l log
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.start(make(chan struct{}), nil).Run(ctx) }()
	testwait.Until(t, "the first step", 10*time.Second, func() bool { return len(l.get()) == 2 })
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before its gate opened", err)
	case <-time.After(10 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want the cancellation", err)
	}
	if got, want := l.get(), []string{"step runtime", "made runtime", "removed"}; !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}

func TestRunGoesOnWhenTheGateOpens(t *testing.T) {
	var l log
	gate := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- l.start(gate, nil).Run(context.Background()) }()
	testwait.Until(t, "the first step", 10*time.Second, func() bool { return len(l.get()) == 2 })
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := l.get(); len(got) != 8 || slices.Contains(got, "removed") {
		t.Errorf("events = %q, want every step and no removal", got)
	}
}
