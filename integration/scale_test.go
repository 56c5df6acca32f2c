package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/bottle-dev/bottle/rpc"
)

// TestTwentyBottlesThreeRounds: 20 bottles (40 networks, more than
// Docker's default pools hold) start, exec and close at once, three times,
// and leave nothing.
func TestTwentyBottlesThreeRounds(t *testing.T) {
	const n = 20
	e := newEditor(t)
	manifest := writeManifest(t, "runc")
	for round := range 3 {
		sessions := make([]string, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var res rpc.StartResult
				if err := e.try(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: manifest}, &res); err != nil {
					errs <- fmt.Errorf("round %d start %d: %w", round, i, err)
					return
				}
				sessions[i] = res.Session
				var x rpc.ExecResult
				tty := false
				if err := e.try(rpc.MethodExec, rpc.ExecParams{Session: res.Session, Argv: []string{"echo", "hello " + res.Session}, Tty: &tty}, &x); err != nil {
					errs <- err
					return
				}
				e.waitExit(x.Exec)
				if out := e.output(x.Exec); !strings.Contains(out, "hello "+res.Session) {
					errs <- fmt.Errorf("exec in %s printed %q", res.Session, out)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, s := range sessions {
			if s != "" {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := e.try(rpc.MethodClose, rpc.CloseParams{Session: s}, nil); err != nil {
						t.Errorf("close %s: %v", s, err)
					}
				}()
			}
		}
		wg.Wait()
		for _, s := range sessions {
			assertGone(t, s)
		}
		if t.Failed() {
			return
		}
	}
}
