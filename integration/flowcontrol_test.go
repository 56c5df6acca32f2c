package integration

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/rpc"
	"github.com/bottle-dev/bottle/session"
)

// rssKiB reads a process's resident set size.
func rssKiB(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestClientThatStopsAckingStallsOnlyItsExec(t *testing.T) {
	e := newEditor(t)
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc")})

	// The flood starts unacknowledged: mark it before its first byte.
	e.mu.Lock()
	e.autoAck = false
	e.mu.Unlock()
	flood := e.exec(started.Session, true, "sh", "-c", "yes flood-flood-flood-flood")
	e.mu.Lock()
	e.noAck[flood] = true
	e.autoAck = true
	e.mu.Unlock()

	sent := func() (int64, int64) {
		var list rpc.ListResult
		e.call(rpc.MethodList, rpc.ListParams{}, &list)
		for _, x := range list.Sessions[0].Execs {
			if x.Exec == flood {
				return x.Sent, x.Acked
			}
		}
		t.Fatal("flood exec not listed")
		return 0, 0
	}
	const window = session.DefaultWindow
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if s, acked := sent(); s-acked >= window {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unacknowledged flood never filled its window of %d bytes", window)
		}
	}
	s1, _ := sent()
	rss1 := rssKiB(t, e.cmd.Process.Pid)
	time.Sleep(3 * time.Second)
	s2, acked := sent()
	rss2 := rssKiB(t, e.cmd.Process.Pid)
	if s2 != s1 || s2-acked > window {
		t.Errorf("unacknowledged exec kept flowing: sent %d then %d bytes, %d acked, window %d", s1, s2, acked, window)
	}
	if rss2-rss1 > 4<<10 {
		t.Errorf("server RSS grew from %d KiB to %d KiB while the exec was stalled", rss1, rss2)
	}

	// Another exec still flows while the flood is stalled.
	other := e.exec(started.Session, false, "sh", "-c", "seq 1 20000 | tail -n 1")
	e.waitOutput(other, "20000")
	if ex := e.waitExit(other); ex.Code != 0 {
		t.Errorf("other exec exit %+v", ex)
	}

	// Acknowledging resumes the flood.
	if err := e.conn.Notify(t.Context(), rpc.MethodAck, rpc.AckParams{Exec: flood, Bytes: s2 - acked}); err != nil {
		t.Fatal(err)
	}
	e.waitUntil("the flood to resume", time.Minute, func() bool { return int64(e.outputs[flood].Len()) > s2 })
	t.Logf("stalled at %d bytes sent; RSS %d -> %d KiB", s2, rss1, rss2)
	e.call(rpc.MethodKill, rpc.KillParams{Exec: flood}, nil)
}
