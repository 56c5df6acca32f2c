package rpc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/session"
)

// DefaultTeardownTimeout bounds the teardown of all sessions on shutdown,
// exit, end of input or cancellation of Serve's context.
const DefaultTeardownTimeout = 2 * time.Minute

// drainTimeout bounds the wait for queued output when serving ends: a
// client that stopped reading must not keep the process alive.
const drainTimeout = 5 * time.Second

// Options tune a Server.
type Options struct {
	// Version is serverInfo.version; "dev" when empty.
	Version string
	// Logger gets the server's diagnostics (give it stderr, never the
	// protocol's output); slog.Default() when nil.
	Logger *slog.Logger
	// Window is the flow-control window per exec in bytes;
	// session.DefaultWindow when zero.
	Window int
	// MaxMessage is the largest Content-Length accepted; DefaultMaxMessage
	// when zero.
	MaxMessage int64
	// TeardownTimeout bounds closing all sessions; DefaultTeardownTimeout
	// when zero.
	TeardownTimeout time.Duration
	// AuditDir is where each session's egress records are kept (see
	// session.Options); empty keeps none.
	AuditDir string
	// Scrollback is how many output bytes of each exec are kept for
	// bottle/attach's replay; session.DefaultScrollback when zero.
	Scrollback int
}

// phase is where the connection is in the LSP-style lifecycle.
type phase int

const (
	phaseNew          phase = iota // before initialize: requests get -32002
	phaseReady                     // serving
	phaseShuttingDown              // after shutdown: requests get -32108
	phaseDone                      // Serve is returning: messages are dropped
)

// Server serves the protocol on top of one session.Registry: to one client
// on stdio (Serve, the default mode), or to many connections of a daemon
// (ServeConn), which share its sessions. Make it with NewServer.
type Server struct {
	be   backend.Backend
	opts Options
	log  *slog.Logger
	reg  *session.Registry

	mu     sync.Mutex
	conns  map[*conn]struct{}
	single *conn // the connection of Serve, for ExitCode
}

// conn is one client connection: its lifecycle phase, its requests in
// flight, its output queue, and the sessions it started and attached to.
// It is the session.Watcher of its client.
type conn struct {
	*Server
	daemon   bool // one of many: its end closes only its own sessions
	methods  map[string]handlerFunc
	controls map[string]controlFunc

	// Set by serve before the connection starts.
	w    *writer
	base context.Context
	conn jsonrpc2.Conn

	mu           sync.Mutex
	phase        phase
	shutdownSeen bool
	inflight     map[jsonrpc2.ID]*request
	client       string                      // clientInfo's name and version, for the audit of policy changes
	approvals    bool                        // the client answers bottle/egressApproval
	owned        map[string]*session.Session // started here and not persistent: closed with the connection
	handlers     sync.WaitGroup
	exit         chan struct{}
	exitOnce     sync.Once
}

// request is a call being handled, for $/cancelRequest.
type request struct {
	cancel context.CancelCauseFunc
}

// errCancelled is the cause of a request cancelled by $/cancelRequest.
var errCancelled = errors.New("request cancelled by the client")

// handlerFunc serves one request and calls reply exactly once.
type handlerFunc func(ctx context.Context, params json.RawMessage, reply func(result any, err error))

// controlFunc serves a message that may come as a notification or a
// request; it must not block.
type controlFunc func(params json.RawMessage) error

// NewServer returns a server that starts bottles on be.
func NewServer(be backend.Backend, opts Options) *Server {
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = DefaultMaxMessage
	}
	if opts.TeardownTimeout <= 0 {
		opts.TeardownTimeout = DefaultTeardownTimeout
	}
	return &Server{
		be:    be,
		opts:  opts,
		log:   opts.Logger,
		reg:   session.NewRegistry(be, session.Options{Window: opts.Window, Scrollback: opts.Scrollback, Logger: opts.Logger, AuditDir: opts.AuditDir}),
		conns: map[*conn]struct{}{},
	}
}

func (s *Server) newConn(daemon bool) *conn {
	c := &conn{
		Server:   s,
		daemon:   daemon,
		inflight: map[jsonrpc2.ID]*request{},
		owned:    map[string]*session.Session{},
		exit:     make(chan struct{}),
	}
	c.methods = map[string]handlerFunc{
		MethodPlan:     handler(c.plan),
		MethodStart:    handler(c.start),
		MethodExec:     c.exec,
		MethodCp:       handler(c.cp),
		MethodCpOut:    handler(c.cpOut),
		MethodChanges:  handler(c.changes),
		MethodFetch:    handler(c.fetch),
		MethodClose:    handler(c.closeSession),
		MethodList:     handler(c.list),
		MethodAgents:   handler(c.agents),
		MethodAllow:    handler(c.allow),
		MethodDisallow: handler(c.disallow),
		MethodAttach:   c.attach,
		MethodDetach:   handler(c.detach),
	}
	c.controls = map[string]controlFunc{
		MethodInput:  control(c.input),
		MethodResize: control(c.resize),
		MethodAck:    control(c.ack),
		MethodKill:   control(c.kill),
	}
	return c
}

// Serve serves one client on in and out, until the client sends exit, in
// ends, writing to out fails, or ctx is cancelled. Before returning it
// tears down every session, persistent ones too (the server ends with its
// client), and writes what is queued (each bounded in time). It returns
// nil when serving ended by exit or end of input; otherwise the reason. A
// read of in that is blocked when Serve returns stays blocked until in is
// closed. ExitCode tells the process's exit code afterwards. Serve may be
// called once.
func (s *Server) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	s.mu.Lock()
	if s.single != nil {
		s.mu.Unlock()
		return errors.New("rpc: Serve called twice")
	}
	c := s.newConn(false)
	s.single = c
	s.mu.Unlock()
	return c.serve(ctx, in, out)
}

// ServeConn serves one connection of many, as a daemon does, until the
// client sends exit, the connection ends or fails, or ctx is cancelled.
// Before returning it closes the sessions this connection started that do
// not persist and detaches it from the others, which run on; it closes
// rwc.
func (s *Server) ServeConn(ctx context.Context, rwc io.ReadWriteCloser) error {
	c := s.newConn(true)
	defer rwc.Close()
	return c.serve(ctx, rwc, rwc)
}

// Busy reports whether a connection is open or a session is starting,
// ready or closing: a daemon that is not busy may end.
func (s *Server) Busy() bool {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	if n > 0 {
		return true
	}
	for _, snap := range s.reg.List(nil) {
		switch snap.State {
		case session.StateStarting, session.StateReady, session.StateClosing:
			return true
		}
	}
	return false
}

// CloseAll tears down every session, persistent ones too, and refuses new
// ones: a daemon's end.
func (s *Server) CloseAll(ctx context.Context) error {
	return s.reg.CloseAll(ctx)
}

// ExitCode is the code the process should exit with once Serve returned:
// 0 when the client sent shutdown first, else 1.
func (s *Server) ExitCode() int {
	s.mu.Lock()
	c := s.single
	s.mu.Unlock()
	if c == nil {
		return 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutdownSeen {
		return 0
	}
	return 1
}

func (c *conn) serve(ctx context.Context, in io.Reader, out io.Writer) error {
	c.Server.mu.Lock()
	c.conns[c] = struct{}{}
	c.Server.mu.Unlock()
	defer func() {
		c.Server.mu.Lock()
		delete(c.conns, c)
		c.Server.mu.Unlock()
	}()

	c.w = newWriter(out, c.log)
	base, cancelBase := context.WithCancelCause(context.WithoutCancel(ctx))
	c.base = base
	rc := jsonrpc2.NewConn(newStream(in, c.w, c.opts.MaxMessage, c.log))
	c.conn = rc
	rc.Go(base, c.handle)

	var err error
	select {
	case <-c.exit:
		c.log.Info("exit received")
	case <-rc.Done():
		if cerr := rc.Err(); cerr != nil && !errors.Is(cerr, io.EOF) {
			err = fmt.Errorf("read input: %w", cerr)
		}
		c.log.Info("input closed")
	case <-c.w.failed:
		// The client is gone (or stopped reading): nothing more can be
		// said to it, so end serving now rather than at end of input.
		err = c.w.failure()
	case <-ctx.Done():
		err = fmt.Errorf("serve: %w", context.Cause(ctx))
	}
	c.stop(cancelBase)
	_ = rc.Close() // the stream's Close only marks it closed
	return err
}

// stop ends serving: later messages are dropped, requests in flight are
// cancelled, the connection's sessions are torn down (on stdio, every
// session), and queued output is written.
func (c *conn) stop(cancelBase context.CancelCauseFunc) {
	c.mu.Lock()
	c.phase = phaseDone
	for _, r := range c.inflight {
		r.cancel(session.ErrShuttingDown)
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.opts.TeardownTimeout)
	defer cancel()
	if !c.daemon {
		if err := c.reg.CloseAll(ctx); err != nil {
			c.log.Error("teardown", "err", err)
		}
	}
	handled := make(chan struct{})
	go func() {
		c.handlers.Wait()
		close(handled)
	}()
	select {
	case <-handled:
	case <-ctx.Done():
		c.log.Error("requests still running after teardown", "err", ctx.Err())
	}
	if c.daemon {
		// After the handlers: a start that was answered is owned by now.
		if err := c.closeOwned(ctx); err != nil {
			c.log.Error("teardown", "err", err)
		}
		for _, snap := range c.reg.List(nil) {
			if sess, err := c.reg.Get(snap.ID); err == nil {
				sess.Detach(c)
			}
		}
	}
	cancelBase(session.ErrShuttingDown)

	dctx, dcancel := context.WithTimeout(context.Background(), drainTimeout)
	defer dcancel()
	if err := c.w.drain(dctx); err != nil {
		c.log.Warn("output not fully written", "err", err)
	}
	c.w.close()
}

// closeSessions closes what shutdown closes: on stdio every session, in a
// daemon the sessions this connection started that do not persist.
func (c *conn) closeSessions(ctx context.Context) error {
	if c.daemon {
		return c.closeOwned(ctx)
	}
	return c.reg.CloseAll(ctx)
}

// closeOwned closes, concurrently, the sessions this connection started
// that do not persist.
func (c *conn) closeOwned(ctx context.Context) error {
	c.mu.Lock()
	owned := make([]*session.Session, 0, len(c.owned))
	for _, sess := range c.owned {
		owned = append(owned, sess)
	}
	clear(c.owned)
	c.mu.Unlock()
	errs := make([]error, len(owned))
	var wg sync.WaitGroup
	for i, sess := range owned {
		wg.Go(func() { errs[i] = sess.Close(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// handle is the jsonrpc2 handler. It runs on the connection's read
// goroutine, so it never blocks: requests run on their own goroutines and
// answer through the replier, and it always returns nil (an error would
// close the connection).
func (c *conn) handle(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
	call, ok := req.(*jsonrpc2.Call)
	if !ok {
		c.notification(req)
		return nil
	}
	method := req.Method()
	c.mu.Lock()
	ph := c.phase
	c.mu.Unlock()
	switch {
	case ph == phaseDone:
		return nil
	case method == MethodInitialize:
		c.initialize(ctx, reply, req.Params())
		return nil
	case ph == phaseNew:
		c.replyErr(reply, rpcError(CodeServerNotInitialized, ErrorData{
			Kind: KindNotInitialized,
			Hint: "send initialize first, then initialized",
		}, "server not initialized: %s before initialize", method))
		return nil
	case ph == phaseShuttingDown:
		c.replyErr(reply, errorFor(fmt.Errorf("%s after shutdown: %w", method, session.ErrShuttingDown)))
		return nil
	case method == MethodShutdown:
		c.shutdown(reply)
		return nil
	}
	if ctl, ok := c.controls[method]; ok {
		if err := ctl(req.Params()); err != nil {
			c.replyErr(reply, errorFor(err))
		} else if err := reply(ctx, struct{}{}, nil); err != nil {
			c.log.Debug("reply", "method", method, "err", err)
		}
		return nil
	}
	h, ok := c.methods[method]
	if !ok {
		c.replyErr(reply, rpcError(CodeMethodNotFound, ErrorData{
			Kind: KindMethodNotFound,
			Hint: "see protocol.md or initialize's capabilities.methods for the methods",
		}, "method not found: %q", method))
		return nil
	}
	c.serveCall(call.ID(), method, h, reply, req.Params())
	return nil
}

// serveCall runs a request on its own goroutine, cancellable by
// $/cancelRequest and by shutdown.
func (c *conn) serveCall(id jsonrpc2.ID, method string, h handlerFunc, reply jsonrpc2.Replier, params json.RawMessage) {
	ctx, cancel := context.WithCancelCause(c.base)
	r := &request{cancel: cancel}
	c.mu.Lock()
	if c.phase == phaseDone {
		c.mu.Unlock()
		cancel(nil)
		return
	}
	c.inflight[id] = r
	c.handlers.Add(1)
	c.mu.Unlock()

	go func() {
		defer c.handlers.Done()
		start := time.Now()
		h(ctx, params, func(result any, err error) {
			c.mu.Lock()
			if c.inflight[id] == r {
				delete(c.inflight, id)
			}
			c.mu.Unlock()
			if err != nil {
				werr := c.wireError(ctx, err)
				c.log.Debug("request failed", "method", method, "id", id, "code", werr.Code, "err", werr.Message)
				c.replyErr(reply, werr)
			} else if rerr := reply(c.base, result, nil); rerr != nil {
				c.log.Debug("reply", "method", method, "err", rerr)
			}
			cancel(nil)
			c.log.Debug("request done", "method", method, "id", id, "took", time.Since(start))
		})
	}()
}

// wireError maps err to a wire error; a request cancelled by the client
// gets -32800 and one cancelled by shutdown -32108, whatever the error
// the work ended with.
func (c *conn) wireError(ctx context.Context, err error) *jsonrpc2.Error {
	if ctx.Err() != nil {
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errCancelled):
			return rpcError(CodeRequestCancelled, ErrorData{
				Kind: KindCancelled,
				Hint: "the request was cancelled by $/cancelRequest; whatever it made was removed",
			}, "request cancelled: %v", err)
		case errors.Is(cause, session.ErrShuttingDown):
			return errorFor(fmt.Errorf("%w: %w", session.ErrShuttingDown, err))
		}
	}
	return errorFor(err)
}

func (c *conn) replyErr(reply jsonrpc2.Replier, werr *jsonrpc2.Error) {
	if err := reply(context.Background(), nil, werr); err != nil {
		c.log.Debug("reply", "err", err)
	}
}

// notification serves a message without id. Before initialize only exit
// is honoured, as in LSP.
func (c *conn) notification(req jsonrpc2.Request) {
	method := req.Method()
	if method == MethodExit {
		c.exitOnce.Do(func() { close(c.exit) })
		return
	}
	c.mu.Lock()
	ph := c.phase
	c.mu.Unlock()
	if ph == phaseNew || ph == phaseDone {
		return
	}
	switch method {
	case MethodInitialized:
	case MethodCancelRequest:
		c.cancelRequest(req.Params())
	default:
		ctl, ok := c.controls[method]
		if !ok {
			c.log.Debug("notification ignored", "method", method)
			return
		}
		if err := ctl(req.Params()); err != nil {
			// A notification has no reply: tell the user instead.
			c.logMessage(MessageWarning, fmt.Sprintf("%s: %v", method, err))
		}
	}
}

func (c *conn) cancelRequest(params json.RawMessage) {
	var p CancelParams
	if err := decodeParams(params, &p); err != nil {
		c.logMessage(MessageWarning, fmt.Sprintf("%s: %v", MethodCancelRequest, err))
		return
	}
	var id jsonrpc2.ID
	if err := json.Unmarshal(p.ID, &id); err != nil {
		c.logMessage(MessageWarning, fmt.Sprintf("%s: id must be an integer or a string", MethodCancelRequest))
		return
	}
	c.mu.Lock()
	r := c.inflight[id]
	c.mu.Unlock()
	if r != nil {
		r.cancel(errCancelled)
	}
}

func (c *conn) initialize(ctx context.Context, reply jsonrpc2.Replier, params json.RawMessage) {
	var p InitializeParams
	if err := decodeParams(params, &p); err != nil {
		c.replyErr(reply, errorFor(err))
		return
	}
	c.mu.Lock()
	if c.phase != phaseNew {
		c.mu.Unlock()
		c.replyErr(reply, rpcError(CodeInvalidRequest, ErrorData{
			Kind: KindAlreadyInitialized,
			Hint: "send initialize once per connection",
		}, "initialize was already called"))
		return
	}
	c.phase = phaseReady
	c.client = clientName(p.ClientInfo)
	c.approvals = p.Capabilities != nil && p.Capabilities.EgressApproval
	c.mu.Unlock()
	if p.ClientInfo != nil {
		c.log.Info("client", "name", p.ClientInfo.Name, "version", p.ClientInfo.Version, "egressApproval", c.approvals)
	}
	var methods []string
	for _, m := range Methods {
		if m.Dir != ServerNotification && m.Dir != ServerRequest {
			methods = append(methods, m.Name)
		}
	}
	slices.Sort(methods)
	res := InitializeResult{
		ServerInfo: ServerInfo{Name: ServerName, Version: c.opts.Version},
		Capabilities: ServerCapabilities{
			FlowControl:      FlowControl{Window: c.reg.Window(), MaxChunk: c.reg.Chunk()},
			MaxMessageSize:   c.opts.MaxMessage,
			WorkDoneProgress: true,
			Methods:          methods,
			Scrollback:       c.reg.Scrollback(),
		},
	}
	if err := reply(ctx, res, nil); err != nil {
		c.log.Debug("reply", "method", MethodInitialize, "err", err)
	}
}

// shutdown refuses further requests, cancels those in flight, and replies
// once every session is torn down.
func (c *conn) shutdown(reply jsonrpc2.Replier) {
	c.mu.Lock()
	c.phase = phaseShuttingDown
	c.shutdownSeen = true
	for _, r := range c.inflight {
		r.cancel(session.ErrShuttingDown)
	}
	c.handlers.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.handlers.Done()
		ctx, cancel := context.WithTimeout(c.base, c.opts.TeardownTimeout)
		defer cancel()
		if err := c.closeSessions(ctx); err != nil {
			c.logMessage(MessageError, fmt.Sprintf("shutdown: %v", err))
			c.replyErr(reply, rpcError(CodeInternalError, ErrorData{
				Kind: KindTeardownFailed,
				Hint: "run 'bottle-rpc gc' to remove what was left behind",
			}, "shutdown: %v", err))
			return
		}
		if err := reply(c.base, nil, nil); err != nil {
			c.log.Debug("reply", "method", MethodShutdown, "err", err)
		}
	}()
}

// handler adapts a typed method to a handlerFunc.
func handler[P, R any](f func(context.Context, *P) (R, error)) handlerFunc {
	return func(ctx context.Context, params json.RawMessage, reply func(any, error)) {
		var p P
		if err := decodeParams(params, &p); err != nil {
			reply(nil, err)
			return
		}
		r, err := f(ctx, &p)
		if err != nil {
			reply(nil, err)
			return
		}
		reply(r, nil)
	}
}

// control adapts a typed control message to a controlFunc.
func control[P any](f func(*P) error) controlFunc {
	return func(params json.RawMessage) error {
		var p P
		if err := decodeParams(params, &p); err != nil {
			return err
		}
		return f(&p)
	}
}

// decodeParams decodes params into v; absent or null params, and an
// empty array (how LSP client libraries encode a method without params),
// decode as {}. A param of the wrong type is an invalid-params error
// naming it.
func decodeParams(params json.RawMessage, v any) error {
	params = bytes.TrimSpace(params)
	if len(params) == 0 || string(params) == "null" || isEmptyArray(params) {
		return nil
	}
	if params[0] != '{' {
		return invalidParams("", "send params as one JSON object", "params must be a JSON object")
	}
	if err := json.Unmarshal(params, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalidParams(te.Field, "see protocol.md for the params' types",
				"%s: expected %s, got %s", te.Field, te.Type, te.Value)
		}
		return invalidParams("", "see protocol.md for the params' types; bytes are standard base64", "params: %v", err)
	}
	return nil
}

// isEmptyArray reports whether b is the JSON array [], spaces allowed.
func isEmptyArray(b []byte) bool {
	return len(b) >= 2 && b[0] == '[' && b[len(b)-1] == ']' && len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}

// notification is a framed JSON-RPC notification.
func notification(method string, params any) ([]byte, error) {
	body, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params"`
	}{"2.0", method, params})
	if err != nil {
		return nil, fmt.Errorf("marshal %s notification: %w", method, err)
	}
	return frame(body), nil
}

// notify queues a notification.
func (c *conn) notify(method string, params any, p priority) {
	msg, err := notification(method, params)
	if err != nil {
		c.log.Error("notification not sent", "err", err)
		return
	}
	if err := c.w.send(msg, p); err != nil {
		c.log.Debug("notification not sent", "method", method, "err", err)
	}
}

// logMessage sends window/logMessage and logs the same to the server log.
func (c *conn) logMessage(t MessageType, msg string) {
	level := map[MessageType]slog.Level{MessageError: slog.LevelError, MessageWarning: slog.LevelWarn}[t]
	c.log.Log(context.Background(), level, msg)
	c.notify(MethodLogMessage, LogMessageParams{Type: t, Message: msg}, high)
}

// conn is the session.Watcher of its client.
var _ session.Watcher = (*conn)(nil)

// Output sends one bottle/output.
func (c *conn) Output(exec string, data []byte, f session.OutputFlags) { c.sendOutput(exec, data, f) }

// Exit sends bottle/exit.
func (c *conn) Exit(exec string, code int, err error) { c.sendExit(exec, code, err) }

// Egress sends bottle/egress.
func (c *conn) Egress(rec egress.Record) { c.sendEgress(rec) }

// State sends bottle/sessionState.
func (c *conn) State(id string, st session.State, err error) {
	p := SessionStateParams{Session: id, State: string(st)}
	if err != nil {
		p.Error = err.Error()
	}
	c.notify(MethodSessionState, p, high)
}

// Ask asks the client with bottle/egressApproval, when it can answer.
func (c *conn) Ask(ctx context.Context, q egress.Record) (string, bool) {
	c.mu.Lock()
	ok := c.approvals && c.phase == phaseReady
	c.mu.Unlock()
	if !ok {
		return session.Deny, false
	}
	return c.askApproval(ctx, q), true
}

// sendOutput sends one bottle/output notification, built by hand because
// it is the hot path of terminal output (the base64 goes straight into the
// frame, with no intermediate copies).
func (c *conn) sendOutput(exec string, data []byte, f session.OutputFlags) {
	id, err := json.Marshal(exec)
	if err != nil {
		c.log.Error("marshal exec id", "err", err)
		return
	}
	const (
		head   = `{"jsonrpc":"2.0","method":"` + MethodOutput + `","params":{"exec":`
		mid    = `,"data":"`
		replay = `","replay":true`
		resync = `","resync":true`
		tail   = `"}}`
	)
	var flags string
	switch {
	case f.Replay && f.Resync:
		flags = replay + resync[1:]
	case f.Replay:
		flags = replay
	case f.Resync:
		flags = resync
	}
	end := tail
	if flags != "" {
		end = flags + "}}"
	}
	n := len(head) + len(id) + len(mid) + base64.StdEncoding.EncodedLen(len(data)) + len(end)
	b := appendHeader(make([]byte, 0, n+32), n)
	b = append(b, head...)
	b = append(b, id...)
	b = append(b, mid...)
	b = base64.StdEncoding.AppendEncode(b, data)
	b = append(b, end...)
	if err := c.w.send(b, low); err != nil {
		c.log.Debug("output not sent", "exec", exec, "err", err)
	}
}

// sendExit sends bottle/exit, queued behind the exec's output.
func (c *conn) sendExit(exec string, code int, err error) {
	p := ExitParams{Exec: exec, Code: code}
	if err != nil {
		p.Error = err.Error()
	}
	c.notify(MethodExecExit, p, low)
}

// sendEgress sends bottle/egress; it is dropped if the client has stopped
// reading and the queue is full.
func (c *conn) sendEgress(rec egress.Record) {
	msg, err := notification(MethodEgress, egressParams(rec))
	if err != nil {
		c.log.Error("egress record not sent", "err", err)
		return
	}
	c.w.sendDroppable(msg)
}
