package dockerbottle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/bottle-dev/bottle/backend"
)

// engineNames plays the engine's side of naming: a name is given once.
type engineNames struct {
	mu    sync.Mutex
	taken map[string]bool
	calls int
}

func (e *engineNames) give(_ context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if e.taken[name] {
		return fmt.Errorf("container name %q: %w", name, cerrdefs.ErrConflict)
	}
	e.taken[name] = true
	return nil
}

func TestConcurrentStartsOfOneAgentAskTheEngineOnceEach(t *testing.T) {
	const starts = 10
	eng := &engineNames{taken: map[string]bool{}}
	var names namesInFlight
	// Every start is in the engine's hands until all ten have asked: the
	// worst case for names, ten at once.
	var asked sync.WaitGroup
	asked.Add(starts)
	var calls atomic.Int32
	give := func(ctx context.Context, name string) error {
		if calls.Add(1) <= starts {
			asked.Done()
			asked.Wait()
		}
		return eng.give(ctx, name)
	}
	got := make(chan string, starts)
	var wg sync.WaitGroup
	for range starts {
		wg.Go(func() {
			name, err := names.nameAgent(context.Background(), "", "sh", give)
			if err != nil {
				t.Errorf("naming: %v", err)
			}
			got <- name
		})
	}
	wg.Wait()
	close(got)
	seen := map[string]bool{}
	for n := range got {
		if seen[n] {
			t.Errorf("two starts named %s", n)
		}
		seen[n] = true
	}
	if eng.calls != starts {
		t.Errorf("the engine was asked %d times for %d names, want once each", eng.calls, starts)
	}
}

func TestAgentNames(t *testing.T) {
	boom := errors.New("engine gone")
	for _, tc := range []struct {
		name    string
		taken   []string
		pinned  string
		fail    error
		want    string
		wantErr error
	}{
		{name: "first free", want: "bottle-sh"},
		{name: "next after names other servers hold", taken: []string{"bottle-sh", "bottle-sh-2"}, want: "bottle-sh-3"},
		{name: "pinned", pinned: "mine", want: "mine"},
		{name: "pinned and taken", taken: []string{"mine"}, pinned: "mine", wantErr: backend.ErrNameTaken},
		{name: "an engine error ends it", fail: boom, wantErr: boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &engineNames{taken: map[string]bool{}}
			for _, n := range tc.taken {
				eng.taken[n] = true
			}
			give := eng.give
			if tc.fail != nil {
				give = func(context.Context, string) error { return tc.fail }
			}
			var names namesInFlight
			got, err := names.nameAgent(context.Background(), tc.pinned, "sh", give)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestAllNamesTakenSaysWhatToDo(t *testing.T) {
	eng := &engineNames{taken: map[string]bool{"bottle-sh": true}}
	for i := 2; i <= maxNameSuffix; i++ {
		eng.taken[fmt.Sprintf("bottle-sh-%d", i)] = true
	}
	var names namesInFlight
	_, err := names.nameAgent(context.Background(), "", "sh", eng.give)
	if !errors.Is(err, backend.ErrNameTaken) {
		t.Fatalf("got %v, want ErrNameTaken", err)
	}
}
