package rpc_test

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/testwait"
	"github.com/bottle-dev/bottle/rpc"
)

// daemon is a Server serving connections as a daemon does (ServeConn),
// each over a net.Pipe to a fakeClient.
type daemon struct {
	t   *testing.T
	be  *fakeBackend
	srv *rpc.Server
}

func newDaemon(t *testing.T, opts rpc.Options) *daemon {
	t.Helper()
	opts.Version = "test"
	opts.Logger = testLogger(t)
	be := &fakeBackend{}
	d := &daemon{t: t, be: be, srv: rpc.NewServer(be, opts)}
	t.Cleanup(func() {
		if err := d.srv.CloseAll(context.Background()); err != nil {
			t.Errorf("CloseAll: %v", err)
		}
	})
	return d
}

// daemonConn is one client connection of a daemon.
type daemonConn struct {
	*fakeClient
	pipe net.Conn
	done chan error // ServeConn's result
}

// dial opens a connection and does the handshake.
func (d *daemon) dial() *daemonConn {
	d.t.Helper()
	server, client := net.Pipe()
	dc := &daemonConn{pipe: client, done: make(chan error, 1)}
	go func() { dc.done <- d.srv.ServeConn(context.Background(), server) }()
	dc.fakeClient = newFakeClient(d.t, client, client)
	d.t.Cleanup(func() { dc.hangUp(d.t) })
	dc.mustCall(rpc.MethodInitialize, rpc.InitializeParams{ClientInfo: &rpc.ClientInfo{Name: "test"}}, nil)
	dc.notify(rpc.MethodInitialized, struct{}{})
	return dc
}

// hangUp closes the client's end, as a client that goes away does, and
// waits for ServeConn to return.
func (dc *daemonConn) hangUp(t *testing.T) {
	t.Helper()
	dc.pipe.Close()
	select {
	case err := <-dc.done:
		dc.done <- err
	case <-time.After(waitTimeout):
		t.Errorf("ServeConn did not return after its connection closed")
	}
}

func (dc *daemonConn) start(persist bool) string {
	dc.t.Helper()
	var res rpc.StartResult
	dc.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude", Persist: persist}, &res)
	return res.Session
}

func (dc *daemonConn) exec(session string, argv ...string) string {
	dc.t.Helper()
	var res rpc.ExecResult
	dc.mustCall(rpc.MethodExec, rpc.ExecParams{Session: session, Argv: argv}, &res)
	return res.Exec
}

func (dc *daemonConn) session(id string) (rpc.SessionInfo, bool) {
	dc.t.Helper()
	var list rpc.ListResult
	dc.mustCall(rpc.MethodList, nil, &list)
	for _, s := range list.Sessions {
		if s.Session == id {
			return s, true
		}
	}
	return rpc.SessionInfo{}, false
}

// outputs returns exec's bottle/output notifications, in order.
func (dc *daemonConn) outputs(exec string) []rpc.OutputParams {
	var out []rpc.OutputParams
	for _, m := range dc.messages() {
		if m.Method != rpc.MethodOutput {
			continue
		}
		var p rpc.OutputParams
		if err := json.Unmarshal(m.Params, &p); err != nil {
			dc.t.Fatal(err)
		}
		if p.Exec == exec {
			out = append(out, p)
		}
	}
	return out
}

// states returns the states told to this connection for a session.
func (dc *daemonConn) states(session string) []string {
	var states []string
	for _, m := range dc.messages() {
		if m.Method != rpc.MethodSessionState {
			continue
		}
		var p rpc.SessionStateParams
		if err := json.Unmarshal(m.Params, &p); err != nil {
			dc.t.Fatal(err)
		}
		if p.Session == session {
			states = append(states, p.State)
		}
	}
	return states
}

// A session that does not persist closes with the connection that started
// it; one that persists runs on, and another connection can attach to it:
// the attach reply, then the exec's output so far flagged replay, then
// live output, and its input reaches the same process.
func TestPersistDecidesWhetherASessionOutlivesItsConnection(t *testing.T) {
	for _, persist := range []bool{false, true} {
		t.Run("persist "+strconv.FormatBool(persist), func(t *testing.T) {
			d := newDaemon(t, rpc.Options{})
			a := d.dial()
			sess := a.start(persist)
			exec := a.exec(sess) // the agent: "agent ready", then as cat
			a.notify(rpc.MethodInput, rpc.InputParams{Exec: exec, Data: []byte("one\n")})
			a.waitOutput(exec, "agent ready\r\none\n")
			a.hangUp(t)

			b := d.dial()
			info, ok := b.session(sess)
			if !persist {
				if ok && info.State != "closed" {
					t.Fatalf("a session that does not persist is %s after its connection ended", info.State)
				}
				if n := d.be.Bottles()[0].Closes(); n != 1 {
					t.Errorf("its bottle was closed %d times, want 1", n)
				}
				return
			}
			if !ok || info.State != "ready" || !info.Persist || info.Attached != 0 {
				t.Fatalf("the persistent session after its connection ended = %+v (listed %v), want ready, persist, 0 attached", info, ok)
			}

			id := b.send(rpc.MethodAttach, rpc.AttachParams{Session: sess})
			b.waitOutput(exec, "agent ready\r\none\n")
			var res rpc.AttachResult
			resp := b.response(strconv.Itoa(id))
			if resp.Error != nil {
				t.Fatalf("attach: %+v", resp.Error)
			}
			if err := json.Unmarshal(resp.Result, &res); err != nil {
				t.Fatal(err)
			}
			if res.Session.Session != sess || res.Session.Attached != 1 || len(res.Session.Execs) != 1 || res.Session.Execs[0].Exec != exec {
				t.Errorf("attach result = %+v, want the session with its exec, 1 attached", res.Session)
			}
			// The reply comes before any of the replay.
			for _, m := range b.messages() {
				if m.isResponse() && string(m.ID) == strconv.Itoa(id) {
					break
				}
				if m.Method == rpc.MethodOutput {
					t.Fatalf("bottle/output %s came before the attach reply", m.Params)
				}
			}

			b.notify(rpc.MethodInput, rpc.InputParams{Exec: exec, Data: []byte("two\n")})
			b.waitOutput(exec, "agent ready\r\none\ntwo\n")
			if got := string(b.outputOf(exec)); got != "agent ready\r\none\ntwo\n" {
				t.Errorf("output = %q, want the replay then the live echo, nothing twice", got)
			}
			var replayed, live string
			for _, o := range b.outputs(exec) {
				if o.Resync {
					t.Errorf("output %q flagged resync", o.Data)
				}
				if o.Replay {
					if live != "" {
						t.Errorf("replayed %q after live output", o.Data)
					}
					replayed += string(o.Data)
				} else {
					live += string(o.Data)
				}
			}
			if replayed != "agent ready\r\none\n" || live != "two\n" {
				t.Errorf("replayed %q, live %q; want the output before the attach replayed, the echo live", replayed, live)
			}
			if n := len(d.be.Bottles()[0].Procs()); n != 1 {
				t.Errorf("the backend ran %d processes, want the one", n)
			}
		})
	}
}

func TestAttachErrors(t *testing.T) {
	d := newDaemon(t, rpc.Options{})
	a := d.dial()
	closed := a.start(true)
	a.mustCall(rpc.MethodClose, rpc.CloseParams{Session: closed}, nil)
	tests := []struct {
		name    string
		session string
		code    int
		kind    string
	}{
		{"unknown session", "deadbeef", -32101, rpc.KindSessionNotFound},
		{"closed session", closed, -32107, rpc.KindSessionNotReady},
		{"no session", "", -32602, rpc.KindInvalidParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, "attach", a.callErr(rpc.MethodAttach, rpc.AttachParams{Session: tt.session}), tt.code, tt.kind)
		})
	}
	checkError(t, "detach unknown", a.callErr(rpc.MethodDetach, rpc.DetachParams{Session: "deadbeef"}), -32101, rpc.KindSessionNotFound)
	checkError(t, "detach no session", a.callErr(rpc.MethodDetach, rpc.DetachParams{}), -32602, rpc.KindInvalidParams)
}

// After bottle/detach a connection gets no more of the session's output;
// its input still reaches the exec.
func TestDetachStopsOutput(t *testing.T) {
	d := newDaemon(t, rpc.Options{})
	a := d.dial()
	sess := a.start(true)
	exec := a.exec(sess, "cat")
	a.notify(rpc.MethodInput, rpc.InputParams{Exec: exec, Data: []byte("before\n")})
	a.waitOutput(exec, "before\n")
	a.mustCall(rpc.MethodDetach, rpc.DetachParams{Session: sess}, nil)
	if info, _ := a.session(sess); info.Attached != 0 || info.State != "ready" {
		t.Errorf("after detach the session = %+v, want ready with 0 attached", info)
	}

	a.notify(rpc.MethodInput, rpc.InputParams{Exec: exec, Data: []byte("after\n")})
	testwait.Until(t, "the exec to echo the input", waitTimeout, func() bool {
		info, _ := a.session(sess)
		return len(info.Execs) == 1 && info.Execs[0].Output == int64(len("before\nafter\n"))
	})
	// The echo is in the scrollback; another connection that attaches
	// gets it, the detached one does not.
	b := d.dial()
	b.mustCall(rpc.MethodAttach, rpc.AttachParams{Session: sess}, nil)
	b.waitOutput(exec, "before\nafter\n")
	if got := string(a.outputOf(exec)); got != "before\n" {
		t.Errorf("the detached connection got %q, want only what came before the detach", got)
	}
}

// Every attached connection is told the session's state changes.
func TestSessionStateGoesToAttachedConnections(t *testing.T) {
	d := newDaemon(t, rpc.Options{})
	a, b, other := d.dial(), d.dial(), d.dial()
	sess := a.start(true)
	b.mustCall(rpc.MethodAttach, rpc.AttachParams{Session: sess}, nil)
	b.mustCall(rpc.MethodClose, rpc.CloseParams{Session: sess}, nil)
	for _, tc := range []struct {
		name string
		c    *daemonConn
		want []string
	}{
		{"the starter", a, []string{"ready", "closing", "closed"}},
		{"the attached", b, []string{"closing", "closed"}},
	} {
		testwait.Until(t, tc.name+" to be told closed", waitTimeout, func() bool { return slices.Contains(tc.c.states(sess), "closed") })
		if got := tc.c.states(sess); !slices.Equal(got, tc.want) {
			t.Errorf("%s was told %v, want %v", tc.name, got, tc.want)
		}
	}
	other.mustCall(rpc.MethodList, nil, nil)
	if got := other.states(sess); len(got) > 0 {
		t.Errorf("a connection not attached was told %v", got)
	}
}

// shutdown on one connection closes that connection's sessions that do not
// persist, and nothing else.
func TestShutdownClosesOnlyTheConnectionsOwnSessions(t *testing.T) {
	d := newDaemon(t, rpc.Options{})
	a, b := d.dial(), d.dial()
	mine, kept := a.start(false), a.start(true)
	theirs := b.start(false)
	if resp := a.call(rpc.MethodShutdown, nil); resp.Error != nil {
		t.Fatalf("shutdown: %+v", resp.Error)
	}
	for id, want := range map[string]string{mine: "closed", kept: "ready", theirs: "ready"} {
		if info, _ := b.session(id); info.State != want {
			t.Errorf("session %s after the other connection's shutdown: %q, want %s", id, info.State, want)
		}
	}
}

// A daemon is busy while a connection is open or a session is not closed.
func TestBusyWhileAConnectionOrASessionLives(t *testing.T) {
	d := newDaemon(t, rpc.Options{})
	if d.srv.Busy() {
		t.Fatal("a new server is busy")
	}
	a := d.dial()
	if !d.srv.Busy() {
		t.Error("not busy with a connection open")
	}
	sess := a.start(true)
	a.hangUp(t)
	if !d.srv.Busy() {
		t.Error("not busy with a persistent session ready and no connection")
	}
	b := d.dial()
	b.mustCall(rpc.MethodClose, rpc.CloseParams{Session: sess}, nil)
	b.hangUp(t)
	if d.srv.Busy() {
		t.Error("busy with no connection and every session closed")
	}
}

func TestInitializeTellsTheScrollback(t *testing.T) {
	for _, tc := range []struct {
		opt, want int
	}{{0, 1 << 20}, {12345, 12345}} {
		d := newDaemon(t, rpc.Options{Scrollback: tc.opt})
		server, client := net.Pipe()
		go d.srv.ServeConn(context.Background(), server)
		c := newFakeClient(t, client, client)
		var res rpc.InitializeResult
		c.mustCall(rpc.MethodInitialize, rpc.InitializeParams{}, &res)
		client.Close()
		if res.Capabilities.Scrollback != tc.want {
			t.Errorf("Scrollback %d: capabilities.scrollback = %d, want %d", tc.opt, res.Capabilities.Scrollback, tc.want)
		}
	}
}
