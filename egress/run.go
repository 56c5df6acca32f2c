package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultPort is where the proxy listens unless its config says otherwise.
const DefaultPort = 3128

// ListeningLine starts the line Run writes to its log once it accepts
// connections; the server waits for it before it hands a bottle out.
const ListeningLine = "egress proxy listening on "

var defaultListen = ":" + strconv.Itoa(DefaultPort)

// limits are the proxy's timeouts, gathered so that tests can shrink them.
type limits struct {
	dial       time.Duration // to reach an upstream
	readHeader time.Duration // for a client to send a request head
	idle       time.Duration // between requests on a kept-alive client connection
	grace      time.Duration // at shutdown, for open requests and tunnels to finish
}

var defaultLimits = limits{
	dial:       10 * time.Second,
	readHeader: 30 * time.Second,
	idle:       2 * time.Minute,
	// Short: the sidecar is stopped with the bottle, and docker stop kills
	// it outright after 10 s.
	grace: 3 * time.Second,
}

// Run listens on cfg.Listen and serves until ctx is done, then shuts down
// gracefully: open requests and tunnels get a short grace period, then the
// tunnels still open are closed. It writes audit records (and questions) as
// JSON lines to auditOut, and to logOut the line "egress proxy listening on
// ADDR" once listening, then the HTTP server's own error messages and the
// control lines it refused. It applies the Control lines of control (nil:
// none) as they come; when control ends, the proxy keeps its policy and asks
// no more questions.
func Run(ctx context.Context, cfg Config, control io.Reader, auditOut, logOut io.Writer) error {
	return run(ctx, cfg, control, auditOut, logOut, defaultLimits)
}

func run(ctx context.Context, cfg Config, control io.Reader, auditOut, logOut io.Writer, lim limits) error {
	opts, err := cfg.options()
	if err != nil {
		return err
	}
	addr := cfg.Listen
	if addr == "" {
		addr = defaultListen
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("egress: listen: %w", err)
	}
	errorLog := log.New(logOut, "egress: ", log.LstdFlags)
	opts.Audit = NewJSONAuditor(auditOut)
	p := newProxy(opts, lim.dial)
	p.errorLog = errorLog
	s := &served{dial: lim.dial, audit: opts.Audit, errorLog: errorLog, waiting: cfg.Wait}
	s.cur.Store(p)
	defer func() { s.proxy().transport.CloseIdleConnections() }()
	if control == nil {
		p.StopAsking()
	} else {
		// Not waited for: a read of the control channel cannot be
		// interrupted, and the process ends with Run anyway.
		go s.control(control)
	}
	// Hijacked CONNECT connections are outside the server's timeouts, so
	// none of these can cut a tunnel.
	srv := &http.Server{
		Handler:           http.HandlerFunc(handled(s)),
		ReadHeaderTimeout: lim.readHeader,
		IdleTimeout:       lim.idle,
		ErrorLog:          errorLog,
		// "OPTIONS *" goes to the proxy, which refuses and audits it, rather
		// than being answered 200 by net/http.
		DisableGeneralOptionsHandler: true,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			if ac, ok := c.(*auditedConn); ok && s == http.StateIdle {
				ac.handled.Store(false) // the next request's handler has not run
			}
		},
	}
	ln = auditedListener{Listener: ln, s: s}
	fmt.Fprintf(logOut, "%s%s\n", ListeningLine, ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		// The listener failed and nothing will be served any more: there is
		// nothing to be graceful for.
		s.proxy().StopAsking()
		srv.Close()
		now, cancel := context.WithCancel(context.Background())
		cancel()
		s.proxy().shutdown(now)
		return fmt.Errorf("egress: serve: %w", err)
	case <-ctx.Done():
	}

	// Held requests must not outlast the grace period, waiting for answers
	// that no longer matter.
	s.proxy().StopAsking()
	grace, cancel := context.WithTimeout(context.Background(), lim.grace)
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		// Requests still running after the grace period are cut.
		srv.Close()
	}
	s.proxy().shutdown(grace)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("egress: serve: %w", err)
	}
	return nil
}

// auditedListener hands out connections on which a response that net/http
// writes on its own, before any handler ran, is audited as a refusal: a
// request it cannot parse (two Host headers, a control character, a bad
// Content-Length), a head too large (431), a version it does not speak
// (505), an Expect it does not know (417). Without it those refusals leave
// no line.
type auditedListener struct {
	net.Listener
	s *served
}

func (l auditedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &auditedConn{Conn: c, s: l.s}, nil
}

// auditedConn is one client connection of an auditedListener.
type auditedConn struct {
	net.Conn
	s        *served
	handled  atomic.Bool // the handler runs or ran for the current request
	recorded atomic.Bool // a refusal of net/http's is audited: it then closes the connection
}

// connKey carries a request's *auditedConn in its context.
type connKey struct{}

// handled marks the request's connection as handled before p sees it.
func handled(p http.Handler) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(*auditedConn); ok {
			c.handled.Store(true)
		}
		p.ServeHTTP(w, r)
	}
}

// NetConn is the connection underneath, for a tunnel that takes it over.
func (c *auditedConn) NetConn() net.Conn { return c.Conn }

func (c *auditedConn) Write(b []byte) (int, error) {
	if !c.handled.Load() && c.recorded.CompareAndSwap(false, true) {
		p := c.s.proxy()
		rec := p.record(EventDecision, "", "", 0)
		rec.Decision, rec.Rule = DecisionDeny, ruleBadRequest
		rec.Reason = "refused by the proxy's HTTP server before the proxy read it: " + statusOf(b)
		p.audit.Record(rec)
	}
	return c.Conn.Write(b)
}

// statusOf is the status of the response that starts with b, such as "400
// Bad Request: too many Host headers". net/http's own texts quote nothing
// the client sent, but they are not the proxy's: the status is cut at a
// quote and keeps printable ASCII only, so that no byte of the agent's
// request can reach the audit from here.
func statusOf(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	_, status, _ := bytes.Cut(line, []byte(" "))
	status, _, _ = bytes.Cut(status, []byte(`"`))
	out := make([]byte, 0, len(status))
	for _, c := range status {
		if c >= ' ' && c <= '~' {
			out = append(out, c)
		}
	}
	return strings.TrimSpace(string(out))
}
