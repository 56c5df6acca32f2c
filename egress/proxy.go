package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"
)

// Proxy is an http.Handler forward proxy: it tunnels CONNECT and forwards
// absolute-URI http:// requests to the targets its Policy allows, and
// refuses everything else.
type Proxy struct {
	policy    *Policy
	audit     Auditor
	session   string
	dialer    *net.Dialer
	transport *http.Transport
	errorLog  *log.Logger // nil: the log package's standard logger

	mu      sync.Mutex
	tunnels map[*tunnel]struct{}
	closing bool           // no new tunnels: the proxy is shutting down
	open    sync.WaitGroup // one count per tracked tunnel, until its close record is written
}

// tunnel is one spliced CONNECT connection pair.
type tunnel struct {
	client, upstream net.Conn
	shutdown         bool // guarded by Proxy.mu: the proxy closed it, not a peer
}

// NewProxy returns a Proxy that decides with policy and records every
// decision to audit, tagged with session.
func NewProxy(policy *Policy, audit Auditor, session string) *Proxy {
	return newProxy(policy, audit, session, defaultLimits.dial)
}

func newProxy(policy *Policy, audit Auditor, session string, dialTimeout time.Duration) *Proxy {
	// No overall deadline anywhere: tunnels and streamed responses live as
	// long as their peers use them. Only reaching the upstream is bounded.
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &Proxy{
		policy:  policy,
		audit:   audit,
		session: session,
		dialer:  dialer,
		transport: &http.Transport{
			Proxy:                 nil, // the sidecar is the way out; it must not chain to a proxy from its environment
			DialContext:           dialer.DialContext,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true, // relay bodies exactly as the upstream sent them
		},
		tunnels: make(map[*tunnel]struct{}),
	}
}

// ServeHTTP handles one proxy request: CONNECT host:port, or an absolute
// http:// URL. Anything else is answered 400.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		p.serveConnect(w, r)
	case r.URL.IsAbs():
		p.serveForward(w, r)
	default:
		p.badRequest(w, r, "not a proxy request")
	}
}

func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	// r.URL.Host is the request target; a Host header does not choose it.
	h, portText, err := net.SplitHostPort(r.URL.Host)
	if err != nil {
		p.badRequest(w, r, err.Error())
		return
	}
	port, err := parsePort(portText)
	if err != nil {
		p.badRequest(w, r, err.Error())
		return
	}
	host := normalizeHost(h)
	rule, ok := p.admit(w, r.Method, host, port)
	if !ok {
		return
	}
	upstream, err := p.dialer.DialContext(r.Context(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		p.fail(w, http.StatusBadGateway, r.Method, host, port, rule, err)
		return
	}
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		p.fail(w, http.StatusInternalServerError, r.Method, host, port, rule, fmt.Errorf("take over the client connection: %w", err))
		return
	}
	defer client.Close()
	defer upstream.Close()

	rec := p.record(eventClose, r.Method, host, port)
	rec.Decision, rec.Rule = decisionAllow, rule
	t := &tunnel{client: client, upstream: upstream}
	if !p.track(t) {
		rec.Reason = "proxy shutting down"
		p.audit.Record(rec)
		return
	}
	defer p.open.Done() // after the close record below: shutdown waits for it
	if _, err = io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err == nil {
		pending, _ := buf.Reader.Peek(buf.Reader.Buffered()) // cannot fail: the bytes are buffered
		rec.BytesUp, rec.BytesDown, err = splice(client, upstream, pending)
	}
	if p.untrack(t) {
		rec.Reason = "closed at proxy shutdown"
	} else if err != nil {
		rec.Reason = err.Error()
	}
	rec.Time = time.Now().UTC()
	p.audit.Record(rec)
}

// splice relays bytes both ways until both directions have ended. pending
// is what the client sent right after its CONNECT head, which the HTTP
// server has already read.
func splice(client, upstream net.Conn, pending []byte) (up, down int64, err error) {
	errs := make(chan error, 2)
	go func() {
		var err error
		up, err = relay(upstream, client, pending)
		errs <- err
	}()
	go func() {
		var err error
		down, err = relay(client, upstream, nil)
		errs <- err
	}()
	for range 2 {
		// The first failure explains the tunnel's end; the other direction
		// then only sees the connection that relay closed because of it.
		if e := <-errs; e != nil && (err == nil || errors.Is(err, net.ErrClosed)) {
			err = e
		}
	}
	return up, down, err
}

// relay writes pending, then copies src to dst until src ends. A clean end
// is passed on as a half-close, so the peer sees EOF while the other
// direction keeps flowing (a client may finish sending and still read the
// reply). A failure ends both directions: the other one could otherwise
// wait forever on a peer that is gone.
func relay(dst, src net.Conn, pending []byte) (int64, error) {
	w, err := dst.Write(pending)
	n := int64(w)
	if err == nil {
		var copied int64
		copied, err = io.Copy(dst, src)
		n += copied
	}
	if err != nil {
		dst.Close()
		src.Close()
		return n, err
	}
	if hc, ok := dst.(interface{ CloseWrite() error }); ok {
		// A failure here surfaces in the other direction.
		_ = hc.CloseWrite()
	} else {
		dst.Close()
	}
	return n, nil
}

func (p *Proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	if r.URL.Scheme != "http" {
		p.badRequest(w, r, "only http:// URLs are forwarded; tunnel anything else with CONNECT")
		return
	}
	if r.URL.Host == "" {
		p.badRequest(w, r, "the URL has no host")
		return
	}
	port := 80
	if s := r.URL.Port(); s != "" {
		var err error
		if port, err = parsePort(s); err != nil {
			p.badRequest(w, r, err.Error())
			return
		}
	}
	host := normalizeHost(r.URL.Hostname())
	rule, ok := p.admit(w, r.Method, host, port)
	if !ok {
		return
	}
	target := net.JoinHostPort(host, strconv.Itoa(port))
	rp := &httputil.ReverseProxy{
		Transport: p.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Dial exactly what was decided; the Host header stays as sent.
			pr.Out.URL.Host = target
			// A forward proxy passes the query on as the client wrote it.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			// ReverseProxy re-adds these for protocol upgrades. Without them
			// it also refuses an upstream that switches protocols anyway, so
			// no upgraded connection becomes a tunnel outside the audit.
			pr.Out.Header.Del("Connection")
			pr.Out.Header.Del("Upgrade")
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			p.fail(w, http.StatusBadGateway, r.Method, host, port, rule, err)
		},
		ErrorLog: p.errorLog,
	}
	rp.ServeHTTP(w, r)
}

// admit decides on host:port and audits the decision. On a refusal it has
// answered the client and returns false.
func (p *Proxy) admit(w http.ResponseWriter, method, host string, port int) (rule string, ok bool) {
	allowed, rule := p.policy.Decide(host, port)
	rec := p.record(eventDecision, method, host, port)
	rec.Rule = rule
	if allowed {
		rec.Decision = decisionAllow
		p.audit.Record(rec)
		return rule, true
	}
	const reason = "not on the allowlist"
	rec.Decision, rec.Reason = decisionDeny, reason
	p.audit.Record(rec)
	w.Header().Set("X-Bottle-Egress", "denied")
	http.Error(w, fmt.Sprintf("bottle egress: %s to %s refused: %s (rule %s)",
		method, net.JoinHostPort(host, strconv.Itoa(port)), reason, rule), http.StatusForbidden)
	return rule, false
}

// fail answers an allowed request whose upstream could not be used, and
// audits why.
func (p *Proxy) fail(w http.ResponseWriter, status int, method, host string, port int, rule string, err error) {
	rec := p.record(eventClose, method, host, port)
	rec.Decision, rec.Rule, rec.Reason = decisionAllow, rule, err.Error()
	p.audit.Record(rec)
	http.Error(w, fmt.Sprintf("bottle egress: %s to %s failed: %v",
		method, net.JoinHostPort(host, strconv.Itoa(port)), err), status)
}

// badRequest refuses what is not a proxy request. It is audited as a denial
// so that every request the proxy receives leaves a line.
func (p *Proxy) badRequest(w http.ResponseWriter, r *http.Request, why string) {
	rec := p.record(eventDecision, r.Method, r.Host, 0)
	rec.Decision, rec.Rule, rec.Reason = decisionDeny, ruleBadRequest, why
	p.audit.Record(rec)
	http.Error(w, "bottle egress: this is a proxy; send CONNECT host:port, or a request for an absolute http:// URL ("+why+")",
		http.StatusBadRequest)
}

func (p *Proxy) record(event, method, host string, port int) Record {
	return Record{
		Time:    time.Now().UTC(),
		Session: p.session,
		Event:   event,
		Method:  method,
		Host:    host,
		Port:    port,
	}
}

// track registers an open tunnel so that shutdown can close it. It returns
// false once shutdown has begun.
func (p *Proxy) track(t *tunnel) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.tunnels[t] = struct{}{}
	p.open.Add(1)
	return true
}

// untrack forgets t and reports whether shutdown closed it.
func (p *Proxy) untrack(t *tunnel) (closedAtShutdown bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.tunnels, t)
	return t.shutdown
}

// shutdown refuses new tunnels, lets open ones finish until ctx is done,
// then closes the rest. It returns once every tunnel's close record is
// written.
func (p *Proxy) shutdown(ctx context.Context) {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		p.open.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	p.mu.Lock()
	for t := range p.tunnels {
		t.shutdown = true
		t.client.Close()
		t.upstream.Close()
	}
	p.mu.Unlock()
	<-done
}
