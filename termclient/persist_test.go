package termclient

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/rpc"
)

func TestRunPersist(t *testing.T) {
	tests := []struct {
		name        string
		persist     bool
		keepRunning bool
		typed       string
		code        int
		detached    bool
	}{
		{"detaching leaves the bottle", true, true, "ls\r\x10\x11", 0, true},
		{"the terminal going leaves it too", true, true, "", 0, true},
		{"the agent's exit closes it", true, false, "", 7, false},
		{"without persist the keys are input", false, false, "\x10\x11", 7, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeServer{keepRunning: tt.keepRunning}
			ctx := testContext(t)
			in, typed := pipeInput(t)
			if _, err := typed.WriteString(tt.typed); err != nil {
				t.Fatal(err)
			}
			if tt.typed == "" && tt.keepRunning {
				typed.Close()
			}
			var errOut bytes.Buffer
			code, err := Run(ctx, pipeTo(t, ctx, srv.serve), Options{Agent: "claude", Yes: true, Persist: tt.persist,
				Terminal: Terminal{In: in, Out: &bytes.Buffer{}, Err: &errOut}})
			if err != nil || code != tt.code {
				t.Fatalf("Run = %d, %v; want %d", code, err, tt.code)
			}
			srv.mu.Lock()
			calls, start := slices.Clone(srv.calls), slices.Clone(srv.start)
			srv.mu.Unlock()
			if len(start) != 1 || start[0].Persist != tt.persist {
				t.Errorf("bottle/start got %+v, want persist %v", start, tt.persist)
			}
			if closed := slices.Contains(calls, rpc.MethodClose); closed == tt.detached {
				t.Errorf("bottle/close sent: %v; calls %v", closed, calls)
			}
			if hint := strings.Contains(errOut.String(), "bottle-rpc attach 0000abcd"); hint != tt.detached {
				t.Errorf("the way back shown: %v, want %v: %q", hint, tt.detached, errOut.String())
			}
		})
	}
}
