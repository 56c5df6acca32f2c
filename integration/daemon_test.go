package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/rpc"

	"github.com/bottle-dev/bottle/internal/lockedbuf"
	"github.com/bottle-dev/bottle/internal/testwait"
)

// daemonProc is a `bottle-rpc daemon` on a socket in a folder of the
// test's own, never the user's default socket.
type daemonProc struct {
	t      testing.TB
	socket string
	cmd    *exec.Cmd
	stderr *lockedbuf.Buffer
	waited chan struct{}
}

// startDaemon runs a daemon and waits until it answers on its socket. It
// is stopped with SIGTERM (which tears every session down) when the test
// ends.
func startDaemon(t testing.TB, args ...string) *daemonProc {
	t.Helper()
	// Not t.TempDir: a socket's path must fit in 107 bytes, and a test's
	// temporary folder carries the test's name.
	dir, err := os.MkdirTemp("", "bottle-d-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemonProc{t: t, socket: filepath.Join(dir, "d.sock"), stderr: &lockedbuf.Buffer{}, waited: make(chan struct{})}
	d.cmd = serverCmd(append([]string{"daemon", "--socket", d.socket, "--idle", "1m"}, args...))
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.waited) }()
	t.Cleanup(d.stop)
	testwait.Until(t, "the daemon to listen on "+d.socket, time.Minute, func() bool {
		select {
		case <-d.waited:
			t.Fatalf("the daemon exited at start: %v\n%s", d.cmd.ProcessState, d.stderr.String())
		default:
		}
		c, err := net.Dial("unix", d.socket)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return d
}

// stop ends the daemon with SIGTERM and waits for it: its sessions are
// torn down first.
func (d *daemonProc) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.waited:
	case <-time.After(2 * time.Minute):
		d.cmd.Process.Kill()
		d.t.Errorf("the daemon did not exit within 2 minutes of SIGTERM")
	}
	if d.t.Failed() {
		d.t.Logf("daemon stderr:\n%s", d.stderr.String())
	}
}

// kill ends the daemon with SIGKILL, with no teardown.
func (d *daemonProc) kill() {
	d.t.Helper()
	d.cmd.Process.Kill()
	<-d.waited
}

// chunk is one bottle/output as a client got it, without its bytes.
type chunk struct {
	exec           string
	n              int
	replay, resync bool
}

// remote is the fake editor on a `bottle-rpc serve --remote=SOCKET`
// forwarder, noting what the editor does not: which output was replayed
// or resynced, and the sessions' state changes.
type remote struct {
	*editor
	init   rpc.InitializeResult
	chunks []chunk // guarded by editor.mu, as is all the editor notes
	states []rpc.SessionStateParams
}

// newClient starts a forwarder to d and initializes it.
func newClient(t testing.TB, d *daemonProc) *remote {
	t.Helper()
	c := startClient(t, nil, "serve", "--remote="+d.socket)
	c.call(rpc.MethodInitialize, rpc.InitializeParams{ClientInfo: &rpc.ClientInfo{Name: "fake editor"}}, &c.init)
	if err := c.conn.Notify(context.Background(), rpc.MethodInitialized, struct{}{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// startClient runs bottle-rpc with args (and env added to the test's)
// behind a fake editor, as startServer does for plain serve.
func startClient(t testing.TB, env []string, args ...string) *remote {
	t.Helper()
	var c *remote
	launch(t, args, env, func(e *editor) jsonrpc2.Handler {
		c = &remote{editor: e}
		return c.handle
	})
	return c
}

func (c *remote) handle(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
	switch req.Method() {
	case rpc.MethodOutput:
		var p rpc.OutputParams
		json.Unmarshal(req.Params(), &p)
		c.mu.Lock()
		c.chunks = append(c.chunks, chunk{p.Exec, len(p.Data), p.Replay, p.Resync})
		c.mu.Unlock()
	case rpc.MethodSessionState:
		var p rpc.SessionStateParams
		json.Unmarshal(req.Params(), &p)
		c.mu.Lock()
		c.states = append(c.states, p)
		c.mu.Unlock()
	}
	return c.editor.handle(ctx, reply, req)
}

// kill ends the forwarder with SIGKILL, as a crashed editor's would end.
func (c *remote) kill() {
	c.t.Helper()
	c.cmd.Process.Kill()
	c.waitExited(time.Minute, "SIGKILL")
}

// startPersistent starts a persistent bottle of the sh agent under runc.
func (c *remote) startPersistent(t testing.TB) rpc.StartResult {
	t.Helper()
	var res rpc.StartResult
	c.call(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc"), Persist: true}, &res)
	return res
}

// execInfo is an exec's entry in bottle/list, as this client sees it.
func (c *remote) execInfo(exec string) rpc.ExecInfo {
	c.t.Helper()
	var list rpc.ListResult
	c.call(rpc.MethodList, rpc.ListParams{}, &list)
	for _, s := range list.Sessions {
		for _, x := range s.Execs {
			if x.Exec == exec {
				return x
			}
		}
	}
	c.t.Fatalf("exec %s not listed", exec)
	return rpc.ExecInfo{}
}

// sessionInfo is a session's entry in bottle/list; ok is false when it is
// not listed.
func (c *remote) sessionInfo(id string) (rpc.SessionInfo, bool) {
	c.t.Helper()
	var list rpc.ListResult
	c.call(rpc.MethodList, rpc.ListParams{}, &list)
	for _, s := range list.Sessions {
		if s.Session == id {
			return s, true
		}
	}
	return rpc.SessionInfo{}, false
}

// bytesOf is how many output bytes of exec the client got.
func (c *remote) bytesOf(exec string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.outputs[exec]; b != nil {
		return b.Len()
	}
	return 0
}

// waitFor polls cond, which asks the daemon or the engine, every 100 ms.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// counterScript prints numbered lines, "N-" and padding, about 1 MB/s in
// bursts of 1000 lines: enough to wrap a 1 MiB scrollback in seconds.
const counterScript = `i=0; while :; do seq -f "%.0f-................................................" $i $((i+999)); i=$((i+1000)); sleep 0.05; done`

// checkCounter checks that out, a stretch of counterScript's output, is a
// run of strictly consecutive numbers: no line lost or repeated. The first
// line may be cut at its start and the last at its end (they are not
// checked). It returns the first and last numbers checked.
func checkCounter(t testing.TB, what string, out string, fromStart bool) (first, last int) {
	t.Helper()
	lines := strings.Split(out, "\n")
	lines = lines[:len(lines)-1] // the last is cut, or empty
	if !fromStart && len(lines) > 0 {
		lines = lines[1:]
	}
	if len(lines) < 2 {
		t.Fatalf("%s: only %d whole lines", what, len(lines))
	}
	prev := -1
	for i, l := range lines {
		num, _, ok := strings.Cut(strings.TrimSuffix(l, "\r"), "-")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			t.Fatalf("%s: line %d is not a counter line: %q", what, i, l)
		}
		switch {
		case i == 0 && fromStart && n != 0:
			t.Fatalf("%s: starts at %d, want 0", what, n)
		case i > 0 && n != prev+1:
			t.Fatalf("%s: %d follows %d (line %d of %d): a gap or a repeat", what, n, prev, i, len(lines))
		}
		if i == 0 {
			first = n
		}
		prev = n
	}
	return first, prev
}

var pidRE = regexp.MustCompile(`(\w+)-pid=(\d+)`)

// pidOf waits for "tag-pid=N" in an exec's output and returns N.
func (c *remote) pidOf(exec, tag string) string {
	c.t.Helper()
	var pid string
	c.waitUntil(tag+"'s pid in exec "+exec, 2*time.Minute, func() bool {
		if c.outputs[exec] == nil {
			return false
		}
		for _, m := range pidRE.FindAllStringSubmatch(c.outputs[exec].String(), -1) {
			if m[1] == tag {
				pid = m[2]
				return true
			}
		}
		return false
	})
	return pid
}

// TestDaemonReattachAfterClientDies: an editor's forwarder dies with its
// persistent bottle running; another attaches and gets the scrollback and
// then the live output with no byte lost or repeated at the seam, and its
// input reaches the same processes.
func TestDaemonReattachAfterClientDies(t *testing.T) {
	d := startDaemon(t)
	a := newClient(t, d)
	if a.init.Capabilities.Scrollback != 1<<20 {
		t.Errorf("capabilities.scrollback %d, want the default 1 MiB", a.init.Capabilities.Scrollback)
	}
	started := a.startPersistent(t)
	counter := a.exec(started.Session, false, "sh", "-c", counterScript)
	shell := a.exec(started.Session, true, "sh")
	ended := a.exec(started.Session, false, "sh", "-c", "read x; echo got-$x; exit 7")
	a.input(shell, "echo before-pid=$$\n")
	pidBefore := a.pidOf(shell, "before")
	a.waitUntil("A's first counter lines", 2*time.Minute, func() bool { return a.outputs[counter] != nil && a.outputs[counter].Len() > 64<<10 })
	a.kill()
	aOut := a.output(counter)
	_, aLast := checkCounter(t, "A's output", aOut, true)

	b := newClient(t, d)
	wantCode(t, b.try(rpc.MethodAttach, rpc.AttachParams{Session: "deadbeef"}, nil), rpc.CodeSessionNotFound)
	// The counter runs on with nobody attached, into its scrollback, past
	// what it keeps: the replay starts within a line, not at the start.
	waitFor(t, "the counter to write 3 MiB", 2*time.Minute, func() bool { return b.execInfo(counter).Output > 3<<20 })
	waitFor(t, "the daemon to see A gone", time.Minute, func() bool {
		si, _ := b.sessionInfo(started.Session)
		return si.Attached == 0
	})
	if si, _ := b.sessionInfo(started.Session); !si.Persist || si.State != "ready" {
		t.Errorf("after A died the session is %+v, want ready and persistent", si)
	}

	// A client that vanishes in the middle of its replay holds nothing up.
	x := newClient(t, d)
	x.call(rpc.MethodAttach, rpc.AttachParams{Session: started.Session}, nil)
	x.kill()
	waitFor(t, "the daemon to see the vanished client gone", time.Minute, func() bool {
		si, _ := b.sessionInfo(started.Session)
		return si.Attached == 0
	})
	// Input goes from any connection: this exec ends with nobody attached.
	b.input(ended, "hello\n")
	waitFor(t, "exec "+ended+" to end", time.Minute, func() bool { return !b.execInfo(ended).Running })

	var att rpc.AttachResult
	b.call(rpc.MethodAttach, rpc.AttachParams{Session: started.Session}, &att)
	if att.Session.Attached != 1 || len(att.Session.Execs) != 3 {
		t.Errorf("attach result %+v, want attached 1 and three execs", att.Session)
	}
	// The exec that ended unwatched: its output, replayed, then its exit.
	if ex := b.waitExit(ended); ex.Code != 7 || !strings.Contains(b.output(ended), "got-hello") {
		t.Errorf("exec that ended unwatched: exit %+v, output %q", ex, b.output(ended))
	}
	// Live output after the replay, then every chunk of the counter in order.
	b.waitUntil("live counter output after the replay", 2*time.Minute, func() bool {
		live := 0
		for _, ch := range b.chunks {
			if ch.exec == counter && !ch.replay {
				live += ch.n
			}
		}
		return live > 256<<10
	})
	b.mu.Lock()
	var replayed, live int
	for _, ch := range b.chunks {
		if ch.exec == ended && !ch.replay {
			t.Errorf("live output of exec %s after it ended", ended)
		}
		if ch.exec != counter {
			continue
		}
		switch {
		case ch.resync:
			t.Errorf("a chunk flagged resync for the only client attached")
		case ch.replay && live > 0:
			t.Errorf("replayed output after live output")
		case ch.replay:
			replayed += ch.n
		default:
			live += ch.n
		}
	}
	b.mu.Unlock()
	if replayed != b.init.Capabilities.Scrollback {
		t.Errorf("replayed %d bytes, want the full scrollback of %d", replayed, b.init.Capabilities.Scrollback)
	}
	first, last := checkCounter(t, "B's replay and live output", b.output(counter), false)
	if first <= aLast {
		t.Errorf("B's replay starts at %d, within what A got (to %d): the scrollback did not wrap", first, aLast)
	}
	t.Logf("A got 0..%d; B got %d replayed bytes and %d live, lines %d..%d", aLast, replayed, live, first, last)

	// The shell's screen comes back, and B types into the same process.
	if got := b.pidOf(shell, "before"); got != pidBefore {
		t.Errorf("B's replay of the shell shows pid %s, A's shell was %s", got, pidBefore)
	}
	b.input(shell, "echo after-pid=$$\n")
	if pidAfter := b.pidOf(shell, "after"); pidAfter != pidBefore {
		t.Errorf("B's input reached pid %s, A's shell was %s", pidAfter, pidBefore)
	}

	b.call(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, nil)
	b.waitUntil("bottle/sessionState closed", time.Minute, func() bool {
		for _, s := range b.states {
			if s.Session == started.Session && s.State == "closed" {
				return true
			}
		}
		return false
	})
	wantCode(t, b.try(rpc.MethodAttach, rpc.AttachParams{Session: started.Session}, nil), rpc.CodeSessionNotReady)
	assertGone(t, started.Session)
}

// TestDaemonClientThatStopsAckingHoldsBackOnlyItself: two clients on one
// exec; the one that stops acking stalls at its window while the other
// streams on, then catches up from the scrollback, told to resync.
func TestDaemonClientThatStopsAckingHoldsBackOnlyItself(t *testing.T) {
	d := startDaemon(t)
	a := newClient(t, d)
	started := a.startPersistent(t)
	t.Cleanup(func() { a.try(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, nil) })
	counter := a.exec(started.Session, false, "sh", "-c", counterScript)

	b := newClient(t, d)
	b.call(rpc.MethodAttach, rpc.AttachParams{Session: started.Session}, nil)
	b.waitUntil("B's first output", 2*time.Minute, func() bool { return b.outputs[counter] != nil && b.outputs[counter].Len() > 64<<10 })
	a.waitUntil("A's first output", 2*time.Minute, func() bool { return a.outputs[counter] != nil && a.outputs[counter].Len() > 64<<10 })

	b.mu.Lock()
	b.noAck[counter] = true
	b.mu.Unlock()
	window := int64(b.init.Capabilities.FlowControl.Window)
	waitFor(t, "B's window to fill", 2*time.Minute, func() bool {
		x := b.execInfo(counter)
		return x.Sent-x.Acked >= window
	})
	stalled := b.execInfo(counter)
	aLen := a.bytesOf(counter)
	// A streams on, further than the scrollback keeps: B's next byte is lost.
	scrollback := a.init.Capabilities.Scrollback
	a.waitUntil("A to stream on past B's stall", 2*time.Minute, func() bool { return a.outputs[counter].Len() > aLen+2*scrollback })
	if got := b.bytesOf(counter); int64(got) != stalled.Sent {
		t.Errorf("B got %d bytes while stalled, want the %d it was sent (window %d)", got, stalled.Sent, window)
	}
	if x := b.execInfo(counter); x.Sent != stalled.Sent {
		t.Errorf("B was sent %d bytes while stalled, then %d", stalled.Sent, x.Sent)
	}

	// B catches up: told to resync, it goes on from the oldest kept byte.
	b.mu.Lock()
	b.noAck[counter] = false
	b.mu.Unlock()
	if err := b.conn.Notify(context.Background(), rpc.MethodAck, rpc.AckParams{Exec: counter, Bytes: stalled.Sent - stalled.Acked}); err != nil {
		t.Fatal(err)
	}
	var resyncAt int // B's bytes before the chunk flagged resync
	b.waitUntil("B's resync and 256 KiB after it", 2*time.Minute, func() bool {
		n, after := 0, -1
		for _, ch := range b.chunks {
			if ch.exec != counter {
				continue
			}
			if ch.resync && after < 0 {
				resyncAt, after = n, 0
			}
			if after >= 0 {
				after += ch.n
			}
			n += ch.n
		}
		return after > 256<<10
	})
	bOut := b.output(counter)
	if resyncAt != int(stalled.Sent) {
		t.Errorf("resync after %d bytes, want after the %d B was sent before it stalled", resyncAt, stalled.Sent)
	}
	_, bStall := checkCounter(t, "B's output before the stall", bOut[:resyncAt], true)
	rFirst, _ := checkCounter(t, "B's output after the resync", bOut[resyncAt:], false)
	_, aLast := checkCounter(t, "A's output", a.output(counter), true)
	if rFirst <= bStall+1 {
		t.Errorf("B resynced at line %d, right after its stall at %d: nothing was skipped", rFirst, bStall)
	}
	t.Logf("window %d: B stalled at line %d, resynced at %d; A streamed to %d", window, bStall, rFirst, aLast)
	a.call(rpc.MethodKill, rpc.KillParams{Exec: counter}, nil)
}

// TestDaemonSmallScrollbackLosesNothingForOneClient: with a scrollback
// smaller than the flow-control window, the one client attached still
// gets every byte, none flagged resync.
func TestDaemonSmallScrollbackLosesNothingForOneClient(t *testing.T) {
	d := startDaemon(t, "--scrollback", "65536")
	a := newClient(t, d)
	if a.init.Capabilities.Scrollback != 65536 || a.init.Capabilities.FlowControl.Window <= 65536 {
		t.Fatalf("scrollback %d and window %d, want 65536 and a larger window", a.init.Capabilities.Scrollback, a.init.Capabilities.FlowControl.Window)
	}
	started := a.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc")})
	counter := a.exec(started.Session, false, "sh", "-c", counterScript)
	a.waitUntil("2 MiB of counter output", 2*time.Minute, func() bool { return a.outputs[counter] != nil && a.outputs[counter].Len() > 2<<20 })
	a.call(rpc.MethodKill, rpc.KillParams{Exec: counter}, nil)
	a.waitExit(counter)
	checkCounter(t, "the output", a.output(counter), true)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ch := range a.chunks {
		if ch.resync || ch.replay {
			t.Fatalf("a chunk flagged %+v for the one client", ch)
		}
	}
}

// TestDaemonNonPersistentClosesWithItsClient: a bottle started without
// persist is removed when the forwarder that started it dies, even with
// another client attached; that client is told.
func TestDaemonNonPersistentClosesWithItsClient(t *testing.T) {
	d := startDaemon(t)
	a := newClient(t, d)
	var started rpc.StartResult
	a.call(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runc")}, &started)
	b := newClient(t, d)
	b.call(rpc.MethodAttach, rpc.AttachParams{Session: started.Session}, nil)
	if len(resourcesWhere(t, func(r dockerbottle.Resource) bool { return r.Session == started.Session })) == 0 {
		t.Fatal("the bottle has no resources on the engine")
	}
	a.kill()
	b.waitUntil("bottle/sessionState closed", 2*time.Minute, func() bool {
		for _, s := range b.states {
			if s.Session == started.Session && s.State == "closed" {
				return true
			}
		}
		return false
	})
	assertGone(t, started.Session)
	if si, ok := b.sessionInfo(started.Session); ok && si.State != "closed" {
		t.Errorf("after its client died the session is %s", si.State)
	}
}

// TestDaemonSIGTERMTearsDownAndTellsItsClients: a daemon told to stop
// removes its bottles, persistent ones too, and its clients are told
// before their connections end.
func TestDaemonSIGTERMTearsDownAndTellsItsClients(t *testing.T) {
	d := startDaemon(t)
	a := newClient(t, d)
	started := a.startPersistent(t)
	shell := a.exec(started.Session, true, "sh")
	a.input(shell, "echo up-pid=$$\n")
	a.pidOf(shell, "up")
	d.cmd.Process.Signal(syscall.SIGTERM)
	a.waitExit(shell)
	a.waitUntil("bottle/sessionState closed", 2*time.Minute, func() bool {
		for _, s := range a.states {
			if s.Session == started.Session && s.State == "closed" {
				return true
			}
		}
		return false
	})
	a.waitExited(time.Minute, "its daemon stopped")
	select {
	case <-d.waited:
	case <-time.After(time.Minute):
		t.Fatal("the daemon did not exit within a minute of SIGTERM")
	}
	assertGone(t, started.Session)
}

// daemonPids lists the `bottle-rpc daemon` processes on socket.
func daemonPids(socket string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 2 && filepath.Base(args[0]) == "bottle-rpc" && args[1] == "daemon" && strings.Contains(string(b), socket) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDaemonAutoStartsOneForConcurrentClients: two `serve --remote=auto`
// that find no daemon start one between them, on the default socket of
// their XDG_RUNTIME_DIR (a folder of the test's), and share its bottles.
func TestDaemonAutoStartsOneForConcurrentClients(t *testing.T) {
	run, err := os.MkdirTemp("", "bottle-x-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	socket := filepath.Join(run, "bottle", "daemon.sock")
	// Registered before the clients', so it runs after they ended: the
	// daemon they started is stopped as the others are, with SIGTERM.
	t.Cleanup(func() {
		for _, pid := range daemonPids(socket) {
			syscall.Kill(pid, syscall.SIGTERM)
			waitFor(t, fmt.Sprintf("daemon %d to exit", pid), 2*time.Minute, func() bool { return syscall.Kill(pid, 0) != nil })
		}
	})
	env := []string{"XDG_RUNTIME_DIR=" + run}
	clients := []*remote{startClient(t, env, "serve", "--remote=auto"), startClient(t, env, "serve", "--remote=auto")}
	errs := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			errs <- c.try(rpc.MethodInitialize, rpc.InitializeParams{ClientInfo: &rpc.ClientInfo{Name: "fake editor"}}, &c.init)
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatalf("initialize through serve --remote=auto: %v", err)
		}
	}
	if pids := daemonPids(socket); len(pids) != 1 {
		t.Fatalf("%d daemons on %s, want 1: %v", len(pids), socket, pids)
	}
	started := clients[0].startPersistent(t)
	if si, ok := clients[1].sessionInfo(started.Session); !ok || !si.Persist {
		t.Errorf("the other client does not list bottle %s: %+v", started.Session, si)
	}
	clients[1].call(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, nil)
	assertGone(t, started.Session)
}

// TestDaemonKilledLeavesNothingGCCannotReap: a daemon killed with SIGKILL
// cannot tear its bottles down; `bottle-rpc gc` removes them.
func TestDaemonKilledLeavesNothingGCCannotReap(t *testing.T) {
	d := startDaemon(t)
	a := newClient(t, d)
	started := a.startPersistent(t)
	d.kill()
	a.waitExited(time.Minute, "its daemon was killed")
	if len(resourcesWhere(t, func(r dockerbottle.Resource) bool { return r.Session == started.Session })) == 0 {
		t.Fatal("the bottle was removed without a teardown")
	}
	out, err := serverCmd([]string{"gc"}).CombinedOutput()
	if err != nil {
		t.Fatalf("bottle-rpc gc: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), started.Session) {
		t.Errorf("bottle-rpc gc did not name bottle %s:\n%s", started.Session, out)
	}
	assertGone(t, started.Session)
}
