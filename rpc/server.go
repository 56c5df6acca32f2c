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
}

// phase is where the connection is in the LSP-style lifecycle.
type phase int

const (
	phaseNew          phase = iota // before initialize: requests get -32002
	phaseReady                     // serving
	phaseShuttingDown              // after shutdown: requests get -32108
	phaseDone                      // Serve is returning: messages are dropped
)

// Server serves the protocol for one client connection on top of a
// session.Registry. Make it with NewServer and call Serve once.
type Server struct {
	be       backend.Backend
	opts     Options
	log      *slog.Logger
	reg      *session.Registry
	methods  map[string]handlerFunc
	controls map[string]controlFunc

	// Set by Serve before the connection starts.
	w    *writer
	base context.Context
	conn jsonrpc2.Conn

	mu           sync.Mutex
	phase        phase
	served       bool
	shutdownSeen bool
	inflight     map[jsonrpc2.ID]*request
	client       string // clientInfo's name and version, for the audit of policy changes
	approvals    bool   // the client answers bottle/egressApproval
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
	s := &Server{
		be:       be,
		opts:     opts,
		log:      opts.Logger,
		inflight: map[jsonrpc2.ID]*request{},
		exit:     make(chan struct{}),
	}
	s.reg = session.NewRegistry(be, session.Options{Window: opts.Window, Events: events{s}, Logger: opts.Logger, AuditDir: opts.AuditDir})
	s.methods = map[string]handlerFunc{
		MethodPlan:     handler(s.plan),
		MethodStart:    handler(s.start),
		MethodExec:     s.exec,
		MethodCp:       handler(s.cp),
		MethodClose:    handler(s.closeSession),
		MethodList:     handler(s.list),
		MethodAgents:   handler(s.agents),
		MethodAllow:    handler(s.allow),
		MethodDisallow: handler(s.disallow),
	}
	s.controls = map[string]controlFunc{
		MethodInput:  control(s.input),
		MethodResize: control(s.resize),
		MethodAck:    control(s.ack),
		MethodKill:   control(s.kill),
	}
	return s
}

// Serve serves JSON-RPC read from in, writing to out, until the client
// sends exit, in ends, writing to out fails, or ctx is cancelled. Before
// returning it tears down every session and writes what is queued (each
// bounded in time). It returns nil when serving ended by exit or end of
// input; otherwise the reason. A read of in that is blocked when Serve returns stays blocked
// until in is closed. ExitCode tells the process's exit code afterwards.
func (s *Server) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return errors.New("rpc: Serve called twice")
	}
	s.served = true
	s.mu.Unlock()

	s.w = newWriter(out, s.log)
	base, cancelBase := context.WithCancelCause(context.WithoutCancel(ctx))
	s.base = base
	conn := jsonrpc2.NewConn(newStream(in, s.w, s.opts.MaxMessage, s.log))
	s.conn = conn
	conn.Go(base, s.handle)

	var err error
	select {
	case <-s.exit:
		s.log.Info("exit received")
	case <-conn.Done():
		if cerr := conn.Err(); cerr != nil && !errors.Is(cerr, io.EOF) {
			err = fmt.Errorf("read input: %w", cerr)
		}
		s.log.Info("input closed")
	case <-s.w.failed:
		// The client is gone (or stopped reading): nothing more can be
		// said to it, so end serving now rather than at end of input.
		err = s.w.failure()
	case <-ctx.Done():
		err = fmt.Errorf("serve: %w", context.Cause(ctx))
	}
	s.stop(cancelBase)
	_ = conn.Close() // the stream's Close only marks it closed
	return err
}

// ExitCode is the code the process should exit with once Serve returned:
// 0 when the client sent shutdown first, else 1.
func (s *Server) ExitCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdownSeen {
		return 0
	}
	return 1
}

// stop ends serving: later messages are dropped, requests in flight are
// cancelled, every session is torn down, and queued output is written.
func (s *Server) stop(cancelBase context.CancelCauseFunc) {
	s.mu.Lock()
	s.phase = phaseDone
	for _, r := range s.inflight {
		r.cancel(session.ErrShuttingDown)
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), s.opts.TeardownTimeout)
	defer cancel()
	if err := s.reg.CloseAll(ctx); err != nil {
		s.log.Error("teardown", "err", err)
	}
	handled := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(handled)
	}()
	select {
	case <-handled:
	case <-ctx.Done():
		s.log.Error("requests still running after teardown", "err", ctx.Err())
	}
	cancelBase(session.ErrShuttingDown)

	dctx, dcancel := context.WithTimeout(context.Background(), drainTimeout)
	defer dcancel()
	if err := s.w.drain(dctx); err != nil {
		s.log.Warn("output not fully written", "err", err)
	}
	s.w.close()
}

// handle is the jsonrpc2 handler. It runs on the connection's read
// goroutine, so it never blocks: requests run on their own goroutines and
// answer through the replier, and it always returns nil (an error would
// close the connection).
func (s *Server) handle(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
	call, ok := req.(*jsonrpc2.Call)
	if !ok {
		s.notification(req)
		return nil
	}
	method := req.Method()
	s.mu.Lock()
	ph := s.phase
	s.mu.Unlock()
	switch {
	case ph == phaseDone:
		return nil
	case method == MethodInitialize:
		s.initialize(ctx, reply, req.Params())
		return nil
	case ph == phaseNew:
		s.replyErr(reply, rpcError(CodeServerNotInitialized, ErrorData{
			Kind: KindNotInitialized,
			Hint: "send initialize first, then initialized",
		}, "server not initialized: %s before initialize", method))
		return nil
	case ph == phaseShuttingDown:
		s.replyErr(reply, errorFor(fmt.Errorf("%s after shutdown: %w", method, session.ErrShuttingDown)))
		return nil
	case method == MethodShutdown:
		s.shutdown(reply)
		return nil
	}
	if c, ok := s.controls[method]; ok {
		if err := c(req.Params()); err != nil {
			s.replyErr(reply, errorFor(err))
		} else if err := reply(ctx, struct{}{}, nil); err != nil {
			s.log.Debug("reply", "method", method, "err", err)
		}
		return nil
	}
	h, ok := s.methods[method]
	if !ok {
		s.replyErr(reply, rpcError(CodeMethodNotFound, ErrorData{
			Kind: KindMethodNotFound,
			Hint: "see protocol.md or initialize's capabilities.methods for the methods",
		}, "method not found: %q", method))
		return nil
	}
	s.serveCall(call.ID(), method, h, reply, req.Params())
	return nil
}

// serveCall runs a request on its own goroutine, cancellable by
// $/cancelRequest and by shutdown.
func (s *Server) serveCall(id jsonrpc2.ID, method string, h handlerFunc, reply jsonrpc2.Replier, params json.RawMessage) {
	ctx, cancel := context.WithCancelCause(s.base)
	r := &request{cancel: cancel}
	s.mu.Lock()
	if s.phase == phaseDone {
		s.mu.Unlock()
		cancel(nil)
		return
	}
	s.inflight[id] = r
	s.handlers.Add(1)
	s.mu.Unlock()

	go func() {
		defer s.handlers.Done()
		start := time.Now()
		h(ctx, params, func(result any, err error) {
			s.mu.Lock()
			if s.inflight[id] == r {
				delete(s.inflight, id)
			}
			s.mu.Unlock()
			if err != nil {
				werr := s.wireError(ctx, err)
				s.log.Debug("request failed", "method", method, "id", id, "code", werr.Code, "err", werr.Message)
				s.replyErr(reply, werr)
			} else if rerr := reply(s.base, result, nil); rerr != nil {
				s.log.Debug("reply", "method", method, "err", rerr)
			}
			cancel(nil)
			s.log.Debug("request done", "method", method, "id", id, "took", time.Since(start))
		})
	}()
}

// wireError maps err to a wire error; a request cancelled by the client
// gets -32800 and one cancelled by shutdown -32108, whatever the error
// the work ended with.
func (s *Server) wireError(ctx context.Context, err error) *jsonrpc2.Error {
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

func (s *Server) replyErr(reply jsonrpc2.Replier, werr *jsonrpc2.Error) {
	if err := reply(context.Background(), nil, werr); err != nil {
		s.log.Debug("reply", "err", err)
	}
}

// notification serves a message without id. Before initialize only exit
// is honoured, as in LSP.
func (s *Server) notification(req jsonrpc2.Request) {
	method := req.Method()
	if method == MethodExit {
		s.exitOnce.Do(func() { close(s.exit) })
		return
	}
	s.mu.Lock()
	ph := s.phase
	s.mu.Unlock()
	if ph == phaseNew || ph == phaseDone {
		return
	}
	switch method {
	case MethodInitialized:
	case MethodCancelRequest:
		s.cancelRequest(req.Params())
	default:
		c, ok := s.controls[method]
		if !ok {
			s.log.Debug("notification ignored", "method", method)
			return
		}
		if err := c(req.Params()); err != nil {
			// A notification has no reply: tell the user instead.
			s.logMessage(MessageWarning, fmt.Sprintf("%s: %v", method, err))
		}
	}
}

func (s *Server) cancelRequest(params json.RawMessage) {
	var p CancelParams
	if err := decodeParams(params, &p); err != nil {
		s.logMessage(MessageWarning, fmt.Sprintf("%s: %v", MethodCancelRequest, err))
		return
	}
	var id jsonrpc2.ID
	if err := json.Unmarshal(p.ID, &id); err != nil {
		s.logMessage(MessageWarning, fmt.Sprintf("%s: id must be an integer or a string", MethodCancelRequest))
		return
	}
	s.mu.Lock()
	r := s.inflight[id]
	s.mu.Unlock()
	if r != nil {
		r.cancel(errCancelled)
	}
}

func (s *Server) initialize(ctx context.Context, reply jsonrpc2.Replier, params json.RawMessage) {
	var p InitializeParams
	if err := decodeParams(params, &p); err != nil {
		s.replyErr(reply, errorFor(err))
		return
	}
	s.mu.Lock()
	if s.phase != phaseNew {
		s.mu.Unlock()
		s.replyErr(reply, rpcError(CodeInvalidRequest, ErrorData{
			Kind: KindAlreadyInitialized,
			Hint: "send initialize once per connection",
		}, "initialize was already called"))
		return
	}
	s.phase = phaseReady
	s.client = clientName(p.ClientInfo)
	s.approvals = p.Capabilities != nil && p.Capabilities.EgressApproval
	s.mu.Unlock()
	if p.ClientInfo != nil {
		s.log.Info("client", "name", p.ClientInfo.Name, "version", p.ClientInfo.Version, "egressApproval", s.approvals)
	}
	var methods []string
	for _, m := range Methods {
		if m.Dir != ServerNotification && m.Dir != ServerRequest {
			methods = append(methods, m.Name)
		}
	}
	slices.Sort(methods)
	res := InitializeResult{
		ServerInfo: ServerInfo{Name: ServerName, Version: s.opts.Version},
		Capabilities: ServerCapabilities{
			FlowControl:      FlowControl{Window: s.reg.Window(), MaxChunk: s.reg.Chunk()},
			MaxMessageSize:   s.opts.MaxMessage,
			WorkDoneProgress: true,
			Methods:          methods,
		},
	}
	if err := reply(ctx, res, nil); err != nil {
		s.log.Debug("reply", "method", MethodInitialize, "err", err)
	}
}

// shutdown refuses further requests, cancels those in flight, and replies
// once every session is torn down.
func (s *Server) shutdown(reply jsonrpc2.Replier) {
	s.mu.Lock()
	s.phase = phaseShuttingDown
	s.shutdownSeen = true
	for _, r := range s.inflight {
		r.cancel(session.ErrShuttingDown)
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.handlers.Done()
		ctx, cancel := context.WithTimeout(s.base, s.opts.TeardownTimeout)
		defer cancel()
		if err := s.reg.CloseAll(ctx); err != nil {
			s.logMessage(MessageError, fmt.Sprintf("shutdown: %v", err))
			s.replyErr(reply, rpcError(CodeInternalError, ErrorData{
				Kind: KindTeardownFailed,
				Hint: "run 'bottle-rpc gc' to remove what was left behind",
			}, "shutdown: %v", err))
			return
		}
		if err := reply(s.base, nil, nil); err != nil {
			s.log.Debug("reply", "method", MethodShutdown, "err", err)
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
func (s *Server) notify(method string, params any, p priority) {
	msg, err := notification(method, params)
	if err != nil {
		s.log.Error("notification not sent", "err", err)
		return
	}
	if err := s.w.send(msg, p); err != nil {
		s.log.Debug("notification not sent", "method", method, "err", err)
	}
}

// logMessage sends window/logMessage and logs the same to the server log.
func (s *Server) logMessage(t MessageType, msg string) {
	level := map[MessageType]slog.Level{MessageError: slog.LevelError, MessageWarning: slog.LevelWarn}[t]
	s.log.Log(context.Background(), level, msg)
	s.notify(MethodLogMessage, LogMessageParams{Type: t, Message: msg}, high)
}

// events gives the registry the server's notifications, as
// session.Events, without making them part of Server's API.
type events struct{ s *Server }

func (e events) Output(exec string, data []byte)       { e.s.sendOutput(exec, data) }
func (e events) Exit(exec string, code int, err error) { e.s.sendExit(exec, code, err) }
func (e events) Egress(rec egress.Record)              { e.s.sendEgress(rec) }
func (e events) Ask(ctx context.Context, q egress.Record) string {
	return e.s.askApproval(ctx, q)
}

// sendOutput sends one bottle/output notification, built by hand because
// it is the hot path of terminal output (the base64 goes straight into the
// frame, with no intermediate copies).
func (s *Server) sendOutput(exec string, data []byte) {
	id, err := json.Marshal(exec)
	if err != nil {
		s.log.Error("marshal exec id", "err", err)
		return
	}
	const (
		head = `{"jsonrpc":"2.0","method":"` + MethodOutput + `","params":{"exec":`
		mid  = `,"data":"`
		tail = `"}}`
	)
	n := len(head) + len(id) + len(mid) + base64.StdEncoding.EncodedLen(len(data)) + len(tail)
	b := appendHeader(make([]byte, 0, n+32), n)
	b = append(b, head...)
	b = append(b, id...)
	b = append(b, mid...)
	b = base64.StdEncoding.AppendEncode(b, data)
	b = append(b, tail...)
	if err := s.w.send(b, low); err != nil {
		s.log.Debug("output not sent", "exec", exec, "err", err)
	}
}

// sendExit sends bottle/exit, queued behind the exec's output.
func (s *Server) sendExit(exec string, code int, err error) {
	p := ExitParams{Exec: exec, Code: code}
	if err != nil {
		p.Error = err.Error()
	}
	s.notify(MethodExecExit, p, low)
}

// sendEgress sends bottle/egress; it is dropped if the client has stopped
// reading and the queue is full.
func (s *Server) sendEgress(rec egress.Record) {
	msg, err := notification(MethodEgress, egressParams(rec))
	if err != nil {
		s.log.Error("egress record not sent", "err", err)
		return
	}
	s.w.sendDroppable(msg)
}
