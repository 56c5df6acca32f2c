package rpc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/rpc"

	"github.com/bottle-dev/bottle/internal/lockedbuf"
)

// waitTimeout bounds every wait of the tests: generous, since each wait
// normally ends in milliseconds.
const waitTimeout = 10 * time.Second

// message is any JSON-RPC message as the client reads it.
type message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *wireError      `json:"error,omitempty"`
}

type wireError struct {
	Code    int           `json:"code"`
	Message string        `json:"message"`
	Data    rpc.ErrorData `json:"data"`
}

func (m message) isResponse() bool { return m.Method == "" }

// fakeClient speaks the protocol over a pair of pipes, in the manner of
// gopls's integration harness, but keeps every message it receives in
// one ordered log: the ordering rules (progress before the start reply,
// the exec reply before output, output before exit) are about the order
// of responses and notifications together, which a jsonrpc2.Conn client
// would split apart. It reads framing by hand so that it can also read
// the error responses with a null id that jsonrpc2 rejects.
type fakeClient struct {
	t  testing.TB
	w  io.WriteCloser
	wm sync.Mutex // one frame at a time

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every message
	log     []message
	nextID  int
	autoAck bool
	output  map[string][]byte
	exits   map[string][]rpc.ExitParams
	readErr error
}

func newFakeClient(t testing.TB, r io.Reader, w io.WriteCloser) *fakeClient {
	c := &fakeClient{
		t:       t,
		w:       w,
		changed: make(chan struct{}),
		autoAck: true,
		output:  map[string][]byte{},
		exits:   map[string][]rpc.ExitParams{},
	}
	go c.read(r)
	return c
}

func (c *fakeClient) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		body, err := readFrame(br)
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.broadcast()
			c.mu.Unlock()
			return
		}
		var m message
		if err := json.Unmarshal(body, &m); err != nil {
			c.t.Errorf("server sent a message that is not JSON-RPC: %v: %.200s", err, body)
			continue
		}
		var ack *rpc.AckParams
		c.mu.Lock()
		c.log = append(c.log, m)
		switch m.Method {
		case rpc.MethodOutput:
			var p rpc.OutputParams
			if err := json.Unmarshal(m.Params, &p); err != nil {
				c.t.Errorf("bad bottle/output: %v", err)
			}
			c.output[p.Exec] = append(c.output[p.Exec], p.Data...)
			if c.autoAck {
				ack = &rpc.AckParams{Exec: p.Exec, Bytes: int64(len(p.Data))}
			}
		case rpc.MethodExecExit:
			var p rpc.ExitParams
			if err := json.Unmarshal(m.Params, &p); err != nil {
				c.t.Errorf("bad bottle/exit: %v", err)
			}
			c.exits[p.Exec] = append(c.exits[p.Exec], p)
		}
		c.broadcast()
		c.mu.Unlock()
		if ack != nil {
			// Not notify: this goroutine must not call t.Fatal, and a
			// write that fails because the test ended is of no interest.
			body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": rpc.MethodAck, "params": ack})
			c.wm.Lock()
			fmt.Fprintf(c.w, "Content-Length: %d\r\n\r\n%s", len(body), body)
			c.wm.Unlock()
		}
	}
}

// broadcast wakes every waiter; c.mu must be held.
func (c *fakeClient) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// readFrame reads one Content-Length framed body.
func readFrame(br *bufio.Reader) ([]byte, error) {
	length := -1
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			if length, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return nil, fmt.Errorf("frame without Content-Length")
	}
	body := make([]byte, length)
	_, err := io.ReadFull(br, body)
	return body, err
}

// writeRaw writes bytes as they are, framing included.
func (c *fakeClient) writeRaw(b []byte) {
	c.t.Helper()
	c.wm.Lock()
	defer c.wm.Unlock()
	if _, err := c.w.Write(b); err != nil {
		c.t.Fatalf("write to server: %v", err)
	}
}

// writeBody frames body and writes it.
func (c *fakeClient) writeBody(body []byte) {
	c.t.Helper()
	c.writeRaw(append([]byte(fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))), body...))
}

func (c *fakeClient) writeMessage(v any) {
	c.t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		c.t.Fatalf("marshal: %v", err)
	}
	c.writeBody(body)
}

// send sends a request and returns its id without waiting.
func (c *fakeClient) send(method string, params any) int {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	c.writeMessage(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return id
}

func (c *fakeClient) notify(method string, params any) {
	c.t.Helper()
	c.writeMessage(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
}

// response waits for the response with the given raw id.
func (c *fakeClient) response(id string) message {
	c.t.Helper()
	var resp message
	c.waitFor("response to "+id, func() bool {
		for _, m := range c.log {
			if m.isResponse() && string(m.ID) == id {
				resp = m
				return true
			}
		}
		return false
	})
	return resp
}

// call sends a request and waits for its response.
func (c *fakeClient) call(method string, params any) message {
	c.t.Helper()
	return c.response(strconv.Itoa(c.send(method, params)))
}

// mustCall calls and decodes the result, failing on an error response.
func (c *fakeClient) mustCall(method string, params, result any) {
	c.t.Helper()
	resp := c.call(method, params)
	if resp.Error != nil {
		c.t.Fatalf("%s: error %d %q (%+v)", method, resp.Error.Code, resp.Error.Message, resp.Error.Data)
	}
	if result != nil {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			c.t.Fatalf("%s: decode result %s: %v", method, resp.Result, err)
		}
	}
}

// callErr calls and returns the error response, failing on success.
func (c *fakeClient) callErr(method string, params any) *wireError {
	c.t.Helper()
	resp := c.call(method, params)
	if resp.Error == nil {
		c.t.Fatalf("%s: want an error, got result %s", method, resp.Result)
	}
	return resp.Error
}

// waitFor waits until cond, called with c.mu held, is true.
func (c *fakeClient) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		c.mu.Lock()
		ok, changed, rerr := cond(), c.changed, c.readErr
		c.mu.Unlock()
		if ok {
			return
		}
		if rerr != nil {
			c.t.Fatalf("waiting for %s: connection ended: %v", what, rerr)
		}
		select {
		case <-changed:
		case <-deadline:
			c.t.Fatalf("waiting for %s: timed out after %v", what, waitTimeout)
		}
	}
}

// messages returns the log so far.
func (c *fakeClient) messages() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]message(nil), c.log...)
}

// outputOf returns the output of an exec so far.
func (c *fakeClient) outputOf(exec string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.output[exec])
}

// waitOutput waits until an exec's output contains want.
func (c *fakeClient) waitOutput(exec, want string) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("output %q from %s", want, exec), func() bool {
		return bytes.Contains(c.output[exec], []byte(want))
	})
}

// waitExit waits for an exec's bottle/exit.
func (c *fakeClient) waitExit(exec string) rpc.ExitParams {
	c.t.Helper()
	var exit rpc.ExitParams
	c.waitFor("bottle/exit of "+exec, func() bool {
		if len(c.exits[exec]) == 0 {
			return false
		}
		exit = c.exits[exec][0]
		return true
	})
	return exit
}

func (c *fakeClient) setAutoAck(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.autoAck = on
}

// harness is a Server on a fake backend, driven by a fakeClient.
type harness struct {
	t      testing.TB
	be     *fakeBackend
	srv    *rpc.Server
	client *fakeClient
	in     *io.PipeWriter // the client's side of the server's input
	out    *io.PipeReader // the client's side of the server's output
	done   chan error     // Serve's result
}

func newHarness(t testing.TB, opts rpc.Options) *harness {
	t.Helper()
	return newHarnessWith(t, &fakeBackend{}, opts)
}

func newHarnessWith(t testing.TB, be *fakeBackend, opts rpc.Options) *harness {
	t.Helper()
	return newHarnessOn(t, be, be, opts)
}

// newHarnessOn serves starts through serving, a wrapper of be.
func newHarnessOn(t testing.TB, be *fakeBackend, serving backend.Backend, opts rpc.Options) *harness {
	t.Helper()
	opts.Version = "test"
	opts.Logger = testLogger(t)
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	h := &harness{t: t, be: be, srv: rpc.NewServer(serving, opts), in: clientOut, out: clientIn, done: make(chan error, 1)}
	go func() {
		err := h.srv.Serve(context.Background(), serverIn, serverOut)
		// As when a server process exits: what the client still writes
		// (an ack, say) fails instead of blocking its reader forever,
		// with an exit still unread behind it.
		serverIn.Close()
		h.done <- err
	}()
	h.client = newFakeClient(t, clientIn, clientOut)
	t.Cleanup(func() {
		clientOut.Close()
		select {
		case <-h.done:
		case <-time.After(waitTimeout):
			t.Errorf("Serve did not return after its input closed")
		}
		clientIn.Close()
		serverIn.Close()
	})
	return h
}

// initialize does the handshake.
func (h *harness) initialize() rpc.InitializeResult {
	h.t.Helper()
	var res rpc.InitializeResult
	h.client.mustCall(rpc.MethodInitialize, rpc.InitializeParams{ClientInfo: &rpc.ClientInfo{Name: "test"}}, &res)
	h.client.notify(rpc.MethodInitialized, struct{}{})
	return res
}

// startSession starts a bottle for agent claude and returns its id.
func (h *harness) startSession() string {
	h.t.Helper()
	var res rpc.StartResult
	h.client.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude"}, &res)
	return res.Session
}

// exec starts a process and returns its exec id.
func (h *harness) exec(session string, argv ...string) string {
	h.t.Helper()
	var res rpc.ExecResult
	h.client.mustCall(rpc.MethodExec, rpc.ExecParams{Session: session, Argv: argv}, &res)
	return res.Exec
}

// serveResult waits for Serve to return.
func (h *harness) serveResult() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		return err
	case <-time.After(waitTimeout):
		h.t.Fatalf("Serve did not return")
		return nil
	}
}

// testLogger keeps the server's log and prints it only when the test
// fails: goroutines may still log after the test returned, when t.Log
// would panic.
func testLogger(t testing.TB) *slog.Logger {
	var buf lockedbuf.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
