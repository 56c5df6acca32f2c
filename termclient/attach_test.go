package termclient

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/internal/lockedbuf"
	"github.com/bottle-dev/bottle/internal/testwait"
	"github.com/bottle-dev/bottle/rpc"
)

// fakeDaemon answers an attaching client as a daemon would: it lists its
// sessions, and after bottle/attach's reply sends what script holds, in
// order, from a goroutine of its own (the client acks as it reads).
type fakeDaemon struct {
	sessions []rpc.SessionInfo // what bottle/list returns
	after    []rpc.SessionInfo // what it returns once attached, if set
	script   []notification
	hangUp   bool // the connection ends after the script
	// what bottle/close reports
	unfetched *rpc.Unfetched

	end jsonrpc2.Conn // the daemon's end of the connection

	mu      sync.Mutex
	calls   []string
	input   []byte
	acked   map[string]int64
	resizes []rpc.ResizeParams
	attach  []string
	detach  []string
	closed  []string
}

type notification struct {
	method string
	params any
}

func (d *fakeDaemon) serve(conn jsonrpc2.Conn) jsonrpc2.Handler {
	return func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.calls = append(d.calls, req.Method())
		switch req.Method() {
		case rpc.MethodInitialize:
			return reply(ctx, rpc.InitializeResult{}, nil)
		case rpc.MethodList:
			sessions := d.sessions
			if len(d.attach) > 0 && d.after != nil {
				sessions = d.after
			}
			return reply(ctx, rpc.ListResult{Sessions: sessions}, nil)
		case rpc.MethodAttach:
			var p rpc.AttachParams
			json.Unmarshal(req.Params(), &p)
			d.attach = append(d.attach, p.Session)
			for _, s := range d.sessions {
				if s.Session == p.Session {
					if err := reply(ctx, rpc.AttachResult{Session: s}, nil); err != nil {
						return err
					}
					go func() {
						for _, n := range d.script {
							conn.Notify(ctx, n.method, n.params)
						}
						if d.hangUp {
							d.end.Close()
						}
					}()
					return nil
				}
			}
			return reply(ctx, nil, jsonrpc2.NewError(-32101, "unknown session"))
		case rpc.MethodDetach:
			var p rpc.DetachParams
			json.Unmarshal(req.Params(), &p)
			d.detach = append(d.detach, p.Session)
			return reply(ctx, struct{}{}, nil)
		case rpc.MethodClose:
			var p rpc.CloseParams
			json.Unmarshal(req.Params(), &p)
			d.closed = append(d.closed, p.Session)
			return reply(ctx, rpc.CloseResult{Unfetched: d.unfetched}, nil)
		case rpc.MethodShutdown:
			return reply(ctx, struct{}{}, nil)
		case rpc.MethodInput:
			var p rpc.InputParams
			json.Unmarshal(req.Params(), &p)
			d.input = append(d.input, p.Data...)
		case rpc.MethodAck:
			var p rpc.AckParams
			json.Unmarshal(req.Params(), &p)
			if d.acked == nil {
				d.acked = map[string]int64{}
			}
			d.acked[p.Exec] += p.Bytes
		case rpc.MethodResize:
			var p rpc.ResizeParams
			json.Unmarshal(req.Params(), &p)
			d.resizes = append(d.resizes, p)
		}
		if _, ok := req.(*jsonrpc2.Call); ok {
			return reply(ctx, nil, jsonrpc2.NewError(jsonrpc2.MethodNotFound, req.Method()))
		}
		return nil
	}
}

// seen returns a copy of what the daemon was sent, under its lock.
func (d *fakeDaemon) seen() fakeDaemon {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fakeDaemon{calls: slices.Clone(d.calls), input: slices.Clone(d.input), resizes: slices.Clone(d.resizes),
		attach: slices.Clone(d.attach), detach: slices.Clone(d.detach), closed: slices.Clone(d.closed), acked: d.acked}
}

// dial connects a client to the daemon.
func (d *fakeDaemon) dial(t *testing.T, ctx context.Context) net.Conn {
	t.Helper()
	return pipeTo(t, ctx, func(conn jsonrpc2.Conn) jsonrpc2.Handler {
		d.end = conn
		return d.serve(conn)
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pipeInput is a terminal stand-in that is not a terminal: the client
// neither goes raw nor sends a size.
func pipeInput(t *testing.T) (in, typed *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

const (
	sess  = "0000abcd"
	shell = "0000abcd-1"
	other = "0000abcd-2"
)

func bottleWith(persist bool, attached int, execs ...rpc.ExecInfo) rpc.SessionInfo {
	return rpc.SessionInfo{Session: sess, Agent: "claude", State: "ready", Persist: persist, Attached: attached, Execs: execs}
}

func tty(exec, cmd string, running bool) rpc.ExecInfo {
	return rpc.ExecInfo{Exec: exec, Argv: []string{cmd}, Tty: true, Running: running}
}

func output(exec, data string, replay, resync bool) notification {
	return notification{rpc.MethodOutput, rpc.OutputParams{Exec: exec, Data: []byte(data), Replay: replay, Resync: resync}}
}

func exit(exec string, code int) notification {
	return notification{rpc.MethodExecExit, rpc.ExitParams{Exec: exec, Code: code}}
}

func TestAttachDrawsTheReplayOnAResetTerminalThenLiveOutput(t *testing.T) {
	pipe := rpc.ExecInfo{Exec: other, Argv: []string{"make"}, Running: true}
	d := &fakeDaemon{
		sessions: []rpc.SessionInfo{bottleWith(true, 0, tty(shell, "bash", true), pipe)},
		script: []notification{
			output(shell, "old screen", true, false),
			output(other, "not for this terminal", false, false),
			output(shell, "|live", false, false),
			output(shell, "kept", false, true),
			exit(other, 0),
			exit(shell, 3),
		},
	}
	ctx := testContext(t)
	in, _ := pipeInput(t)
	var out, errOut bytes.Buffer
	code, err := Attach(ctx, d.dial(t, ctx), "", Terminal{In: in, Out: &out, Err: &errOut})
	if err != nil || code != 3 {
		t.Fatalf("Attach = %d, %v; want the exec's 3", code, err)
	}
	if want := resetTerminal + "old screen|live" + resetTerminal + "kept"; out.String() != want {
		t.Errorf("the terminal got %q, want %q", out.String(), want)
	}
	got := d.seen()
	if want := map[string]int64{shell: int64(len("old screen|livekept")), other: int64(len("not for this terminal"))}; !mapsEqual(got.acked, want) {
		t.Errorf("acked %v, want every byte of every exec: %v", got.acked, want)
	}
	if !slices.Equal(got.attach, []string{sess}) {
		t.Errorf("attached to %v, want [%s]", got.attach, sess)
	}
	if !strings.Contains(errOut.String(), "Ctrl-P Ctrl-Q detaches") {
		t.Errorf("the detach keys are not shown: %q", errOut.String())
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestAttachClosesABottleOnlyWhenItsLastProcessEndedUnwatched(t *testing.T) {
	tests := []struct {
		name  string
		after rpc.SessionInfo // bottle/list once the exec ended
		close bool
	}{
		{"nothing runs and nobody else is attached", bottleWith(true, 1, tty(shell, "bash", false)), true},
		{"another client is attached", bottleWith(true, 2, tty(shell, "bash", false)), false},
		{"another process runs", bottleWith(true, 1, tty(shell, "bash", false), tty(other, "claude", true)), false},
		{"it is closing already", rpc.SessionInfo{Session: sess, State: "closing", Attached: 1}, false},
	}
	const unfetched = "bottle: 0000abcd closed with work not fetched: 1 commit and 2 changed files\r\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDaemon{
				sessions:  []rpc.SessionInfo{bottleWith(true, 0, tty(shell, "bash", true))},
				after:     []rpc.SessionInfo{tt.after},
				script:    []notification{exit(shell, 0)},
				unfetched: &rpc.Unfetched{Commits: 1, Files: 2},
			}
			ctx := testContext(t)
			in, _ := pipeInput(t)
			var errOut bytes.Buffer
			if code, err := Attach(ctx, d.dial(t, ctx), sess, Terminal{In: in, Out: &bytes.Buffer{}, Err: &errOut}); err != nil || code != 0 {
				t.Fatalf("Attach = %d, %v", code, err)
			}
			if closed := d.seen().closed; (len(closed) == 1) != tt.close {
				t.Errorf("closed %v, want a close: %v", closed, tt.close)
			}
			// The work went with the bottle: the user is told.
			if said := strings.Contains(errOut.String(), unfetched); said != tt.close {
				t.Errorf("unfetched work said: %v, want %v: %q", said, tt.close, errOut.String())
			}
		})
	}
}

func TestAttachEndsWhenTheDaemonGoes(t *testing.T) {
	d := &fakeDaemon{
		sessions: []rpc.SessionInfo{bottleWith(true, 0, tty(shell, "bash", true))},
		script:   []notification{output(shell, "screen", true, false)},
		hangUp:   true,
	}
	ctx := testContext(t)
	in, _ := pipeInput(t)
	var out bytes.Buffer
	code, err := Attach(ctx, d.dial(t, ctx), "", Terminal{In: in, Out: &out, Err: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "connection to the server ended") || code != 1 {
		t.Errorf("Attach = %d, %v; want 1 and an error that says the connection ended", code, err)
	}
	if want := resetTerminal + "screen" + restoreModes; out.String() != want {
		t.Errorf("the terminal got %q, want %q", out.String(), want)
	}
}

func TestDetachKeysLeaveTheBottleRunning(t *testing.T) {
	d := &fakeDaemon{sessions: []rpc.SessionInfo{bottleWith(true, 0, tty(shell, "bash", true))}}
	ctx := testContext(t)
	in, typed := pipeInput(t)
	var out, errOut lockedbuf.Buffer
	done := make(chan error, 1)
	var code int
	go func() {
		var err error
		code, err = Attach(ctx, d.dial(t, ctx), "", Terminal{In: in, Out: &out, Err: &errOut})
		done <- err
	}()
	// Split across writes: the Ctrl-P is held until the key after it.
	for _, s := range []string{"ls\r\x10", "\x10x", "\x10", "\x11ignored"} {
		if _, err := typed.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil || code != 0 {
		t.Fatalf("Attach = %d, %v; want 0 after detaching", code, err)
	}
	got := d.seen()
	if want := "ls\r\x10\x10x"; string(got.input) != want {
		t.Errorf("the process got %q, want %q", got.input, want)
	}
	if !slices.Equal(got.detach, []string{sess}) || len(got.closed) != 0 {
		t.Errorf("detached %v, closed %v; want a detach and no close", got.detach, got.closed)
	}
	if !strings.HasSuffix(out.String(), restoreModes) {
		t.Errorf("the terminal's modes are not restored: %q", out.String())
	}
	if !strings.Contains(errOut.String(), "bottle-rpc attach "+sess) {
		t.Errorf("no word on how to come back: %q", errOut.String())
	}
}

// TestAttachSendsTheTerminalsSize runs the client on a pty: it goes raw,
// sends the size it finds once attached, and the detach keys typed on the
// terminal end it.
func TestAttachSendsTheTerminalsSize(t *testing.T) {
	ptmx, tt, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close(); tt.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 132, Rows: 43}); err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{sessions: []rpc.SessionInfo{bottleWith(true, 0, tty(shell, "bash", true))}}
	ctx := testContext(t)
	done := make(chan error, 1)
	go func() {
		_, err := Attach(ctx, d.dial(t, ctx), shell, Terminal{In: tt, Out: &bytes.Buffer{}, Err: &lockedbuf.Buffer{}})
		done <- err
	}()
	// The size is sent once the terminal is raw. In cooked mode the line
	// discipline would take Ctrl-Q (XON) and hold Ctrl-P for a newline:
	// the client only ends if it made the terminal raw.
	testwait.Until(t, "the size sent", 5*time.Second, func() bool { return len(d.seen().resizes) > 0 })
	if _, err := ptmx.Write([]byte{0x10, 0x11}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := d.seen().resizes, []rpc.ResizeParams{{Exec: shell, Cols: 132, Rows: 43}}; !slices.Equal(got, want) {
		t.Errorf("resizes %v, want %v", got, want)
	}
}

func TestAttachPicksOnlyWhatIsCertain(t *testing.T) {
	ended := tty("0000beef-1", "bash", false)
	code := 4
	ended.Code = &code
	two := rpc.SessionInfo{Session: "0000beef", Agent: "claude", State: "ready", Persist: true,
		Execs: []rpc.ExecInfo{ended, tty("0000beef-2", "claude", true), tty("0000beef-3", "bash", true)}}
	one := bottleWith(true, 0, tty(shell, "claude", true), rpc.ExecInfo{Exec: other, Argv: []string{"make"}, Running: true})
	transient := rpc.SessionInfo{Session: "0000cafe", Agent: "claude", State: "ready", Execs: []rpc.ExecInfo{tty("0000cafe-1", "claude", true)}}
	failed := rpc.SessionInfo{Session: "0000dead", Agent: "claude", State: "failed", Persist: true, Error: "container vanished\x1b[2K",
		Execs: []rpc.ExecInfo{tty("0000dead-1", "claude", true)}}
	tests := []struct {
		name     string
		sessions []rpc.SessionInfo
		target   string
		exec     string // "" for an error
		errHas   []string
	}{
		{"the only persistent terminal", []rpc.SessionInfo{one, transient, failed}, "", shell, nil},
		{"none", []rpc.SessionInfo{transient, failed}, "", "", []string{"no persistent bottle", "bottle-rpc ls"}},
		{"several are listed to name one", []rpc.SessionInfo{one, two}, "", "", []string{"bottle-rpc attach " + sess + " ", "attach 0000beef-2 ", "attach 0000beef-3 "}},
		{"a session with one terminal", []rpc.SessionInfo{one, two}, sess, shell, nil},
		{"a session with two", []rpc.SessionInfo{two}, "0000beef", "", []string{"2 running terminals", "attach 0000beef-2", "# claude"}},
		{"a non-persistent session named", []rpc.SessionInfo{transient}, "0000cafe", "0000cafe-1", nil},
		{"an exec named", []rpc.SessionInfo{two}, "0000beef-3", "0000beef-3", nil},
		{"an ended exec", []rpc.SessionInfo{two}, "0000beef-1", "", []string{"has ended (exit code 4)"}},
		{"a failed session", []rpc.SessionInfo{failed}, "0000dead", "", []string{"is failed", `\x1b`}},
		{"an unknown one", []rpc.SessionInfo{one}, "nope\n", "", []string{`no bottle or exec "nope\n"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, exec, err := pick(tt.sessions, tt.target)
			if exec != tt.exec {
				t.Errorf("picked %q, want %q (error %v)", exec, tt.exec, err)
			}
			for _, part := range tt.errHas {
				if err == nil || !strings.Contains(err.Error(), part) {
					t.Errorf("error %v lacks %q", err, part)
				}
			}
		})
	}
}
