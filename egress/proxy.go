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
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Proxy is an http.Handler forward proxy: it tunnels CONNECT and forwards
// absolute-URI http:// requests to the targets its Policy allows, and
// refuses everything else.
type Proxy struct {
	policy    atomic.Pointer[Policy] // the live policy: each decision reads it once
	policyMu  sync.Mutex             // serializes SetPolicy
	ask       *asker                 // nil: refuse default-deny at once
	audit     Auditor
	session   string
	dlp       *Scanner // nil: no DLP
	trust     *Trust   // nil: nothing trusted
	resolver  Resolver
	dns       dnsCache
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

// Options are what a Proxy decides with.
type Options struct {
	Policy  *Policy
	Audit   Auditor
	Session string   // copied into every audit record
	DLP     *Scanner // nil: no DLP
	Trust   *Trust   // nil: no host may resolve to a non-public address
	// Resolver looks up allowlisted names; nil means net.DefaultResolver.
	Resolver Resolver
	// AskTimeout > 0 makes the proxy ask about a connection that only
	// default-deny refuses, holding it at most this long: an "ask" record
	// on Audit, answered by Answer. 0 refuses such a connection at once.
	AskTimeout time.Duration
}

// NewProxy returns a Proxy that decides with policy and records every
// decision to audit, tagged with session, with no DLP and nothing trusted.
func NewProxy(policy *Policy, audit Auditor, session string) *Proxy {
	return New(Options{Policy: policy, Audit: audit, Session: session})
}

// New returns a Proxy for opts.
func New(opts Options) *Proxy {
	return newProxy(opts, defaultLimits.dial)
}

func newProxy(opts Options, dialTimeout time.Duration) *Proxy {
	// No overall deadline anywhere: tunnels and streamed responses live as
	// long as their peers use them. Only reaching the upstream is bounded.
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	p := &Proxy{
		audit:    opts.Audit,
		session:  opts.Session,
		dlp:      opts.DLP,
		trust:    opts.Trust,
		resolver: opts.Resolver,
		dialer:   dialer,
		tunnels:  make(map[*tunnel]struct{}),
	}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	p.policy.Store(opts.Policy)
	if opts.AskTimeout > 0 {
		p.ask = newAsker(opts.AskTimeout, opts.Audit, p.record)
	}
	p.transport = &http.Transport{
		Proxy:                 nil, // the sidecar is the way out; it must not chain to a proxy from its environment
		DialContext:           p.dialChecked,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // relay bodies exactly as the upstream sent them
	}
	return p
}

// ServeHTTP handles one proxy request: CONNECT host:port, or an absolute
// http:// URL. Anything else is answered 400. DLP comes first, before
// anything of the request is written anywhere: a refusal for a secret in the
// host name must not put the secret in the audit.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := p.dlp.ScanRequest(r); f != nil {
		p.refuseSecret(w, r, f)
		return
	}
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
	rule, addrs, tlsOnly, ok := p.admit(w, r, host, port, true)
	if !ok {
		return
	}
	upstream, err := p.dialAddrs(r.Context(), addrs, port)
	if err != nil {
		p.dns.forget(host)
		p.fail(w, http.StatusBadGateway, r.Method, host, port, rule, err)
		return
	}
	client, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		p.fail(w, http.StatusInternalServerError, r.Method, host, port, rule, fmt.Errorf("take over the client connection: %w", err))
		return
	}
	if wrapped, ok := client.(interface{ NetConn() net.Conn }); ok {
		client = wrapped.NetConn() // the tunnel needs the TCP connection's half-close
	}
	defer client.Close()
	defer upstream.Close()

	rec := p.record(EventClose, r.Method, host, port)
	rec.Decision, rec.Rule = DecisionAllow, rule
	t := &tunnel{client: client, upstream: upstream}
	if !p.track(t) {
		rec.Reason = "proxy shutting down"
		p.audit.Record(rec)
		return
	}
	defer p.open.Done() // after the close record below: shutdown waits for it
	var refused *tlsRefusal
	if _, err = io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err == nil {
		pending, _ := buf.Reader.Peek(buf.Reader.Buffered()) // cannot fail: the bytes are buffered
		check := func(hello io.Reader) ([]byte, error) { return p.checkTLS(client, hello, host, port, tlsOnly) }
		rec.BytesUp, rec.BytesDown, err = splice(client, upstream, pending, check)
		errors.As(err, &refused)
	}
	if refused != nil {
		// The tunnel never carried the ClientHello: a second decision
		// for this request, and no close line.
		p.untrack(t)
		deny := p.record(EventDecision, r.Method, host, port)
		deny.Decision, deny.Rule, deny.Reason = DecisionDeny, refused.rule, refused.reason
		p.audit.Record(deny)
		return
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
// server has already read. check sees the client's first bytes before any
// reach the upstream and returns what it consumed of them; an error from it
// ends the tunnel without sending them.
func splice(client, upstream net.Conn, pending []byte, check func(io.Reader) ([]byte, error)) (up, down int64, err error) {
	errs := make(chan error, 2)
	go func() {
		var src io.Reader = client
		if len(pending) > 0 {
			src = io.MultiReader(bytes.NewReader(pending), client)
		}
		first, err := check(src)
		if err != nil {
			client.Close()
			upstream.Close()
			errs <- err
			return
		}
		up, err = relay(upstream, client, src, first)
		errs <- err
	}()
	go func() {
		var err error
		down, err = relay(client, upstream, upstream, nil)
		errs <- err
	}()
	for range 2 {
		// The first failure explains the tunnel's end; the other direction
		// then only sees the connection that relay closed because of it. A
		// TLS refusal explains it whatever else happened.
		var refused *tlsRefusal
		if e := <-errs; e != nil && (err == nil || errors.Is(err, net.ErrClosed) || errors.As(e, &refused)) {
			err = e
		}
	}
	return up, down, err
}

// relay writes pending, then copies from r (src's data) to dst until it
// ends. A clean end is passed on as a half-close, so the peer sees EOF while
// the other direction keeps flowing (a client may finish sending and still
// read the reply). A failure ends both directions: the other one could
// otherwise wait forever on a peer that is gone.
func relay(dst, src net.Conn, r io.Reader, pending []byte) (int64, error) {
	w, err := dst.Write(pending)
	n := int64(w)
	if err == nil {
		var copied int64
		copied, err = io.Copy(dst, r)
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
	rule, addrs, _, ok := p.admit(w, r, host, port, false)
	if !ok {
		return
	}
	target := net.JoinHostPort(host, strconv.Itoa(port))
	r = r.WithContext(context.WithValue(r.Context(), checkedKey{}, checked{addrs: addrs, port: port}))
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
			p.dns.forget(host)
			p.fail(w, http.StatusBadGateway, r.Method, host, port, rule, err)
		},
		ErrorLog: p.errorLog,
	}
	rp.ServeHTTP(w, r)
}

// admit decides on host:port for a plain HTTP request, or for a tunnel:
// the policy (blocklist, allowlist), then the blocklist and the SSRF guard on
// the addresses the name resolves to. A target that only default-deny
// refuses may be asked about (see Options.AskTimeout): the request is held
// until the answer. It audits the decision and returns the checked
// addresses to dial, and for a tunnel whether it must carry TLS. On a
// refusal, or when the name does not resolve, it has answered the client and
// returns false.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, host string, port int, tunnel bool) (rule string, addrs []netip.Addr, tlsOnly, ok bool) {
	method := r.Method
	pol := p.policy.Load()
	allowed, rule, tlsOnly := decide(pol, host, port, tunnel)
	rec := p.record(EventDecision, method, host, port)
	rec.Rule = rule
	explicit := true // an allowlist entry names the target: an IP literal needs no trust
	if !allowed {
		if !p.askable(rule, host, port) {
			p.deny(w, rec, refusalReason(pol, host, port, rule, tunnel))
			return rule, nil, false, false
		}
		if pol, ok = p.askFor(w, r, rec, pol, tunnel); !ok {
			return rule, nil, false, false
		}
		rule, tlsOnly, explicit = ruleApproved, false, false
		rec.Rule = rule
	}
	addrs, err := p.resolve(r.Context(), host)
	if err == nil {
		if denied, reason := p.checkAddrs(pol, host, port, addrs, explicit); denied != "" {
			rec.Rule = denied
			p.deny(w, rec, reason)
			return denied, nil, false, false
		}
	}
	rec.Decision = DecisionAllow
	p.audit.Record(rec)
	if err != nil {
		p.fail(w, http.StatusBadGateway, method, host, port, rule, err)
		return rule, nil, false, false
	}
	return rule, addrs, tlsOnly, true
}

func decide(pol *Policy, host string, port int, tunnel bool) (allowed bool, rule string, tlsOnly bool) {
	if tunnel {
		return pol.DecideTunnel(host, port)
	}
	allowed, rule = pol.Decide(host, port)
	return allowed, rule, false
}

// askable reports whether a refusal by rule may be asked about: only
// default-deny of a well-formed target, and only when the proxy asks.
func (p *Proxy) askable(rule, host string, port int) bool {
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() != "" {
		return false // a zone names the sidecar's interface: never a host to ask about
	}
	return p.ask != nil && rule == ruleDefaultDeny && port >= 1 && port <= 65535 && (isIP(host) || validName(host))
}

// askFor asks whether rec's target, which only default-deny refuses, may be
// reached, and holds the request until the answer. No name is looked up
// before the answer: the agent could otherwise send anything it likes out
// through the sidecar's DNS queries, by naming hosts that are not allowed.
// An IP literal is checked before asking, as a name's addresses are after:
// an approval never lifts the blocklist or the SSRF guard. On a refusal it
// has answered the client and returns false; otherwise it returns the
// policy to go on with, which may have changed while the request was held,
// and whose blocklist still applies.
func (p *Proxy) askFor(w http.ResponseWriter, r *http.Request, rec Record, pol *Policy, tunnel bool) (*Policy, bool) {
	host, port := rec.Host, rec.Port
	if ip, err := netip.ParseAddr(host); err == nil {
		if denied, reason := p.checkAddrs(pol, host, port, []netip.Addr{ip}, false); denied != "" {
			rec.Rule = denied
			p.deny(w, rec, reason)
			return nil, false
		}
	}
	allowed, why := p.ask.ask(r.Context().Done(), rec.Method, host, port)
	if !allowed {
		p.deny(w, rec, why)
		return nil, false
	}
	pol = p.policy.Load()
	if _, rule, _ := decide(pol, host, port, tunnel); strings.HasPrefix(rule, "block:") {
		rec.Rule = rule
		p.deny(w, rec, refusalReason(pol, host, port, rule, tunnel))
		return nil, false
	}
	return pol, true
}

// checkAddrs checks the addresses host resolved to against pol's blocklist
// and the SSRF guard, and returns the rule that refuses them and why, or
// "". explicit says an allowlist entry names the target, which exempts an
// IP literal from the SSRF guard.
func (p *Proxy) checkAddrs(pol *Policy, host string, port int, addrs []netip.Addr, explicit bool) (rule, reason string) {
	for _, a := range addrs {
		if entry, blocked := pol.BlockedAddr(a, port); blocked {
			return "block:" + entry, fmt.Sprintf("resolves to %s, which is on the blocklist", a.Unmap())
		}
	}
	var private *errNotPublic
	if err := p.checkPublic(host, addrs, explicit); errors.As(err, &private) {
		return ruleNotPublic, private.Error()
	}
	return "", ""
}

// refusalReason says why pol refused host:port.
func refusalReason(pol *Policy, host string, port int, rule string, tunnel bool) string {
	switch {
	case strings.HasPrefix(rule, "block:"):
		return "on the blocklist"
	case strings.Contains(host, "%") && isIP(host):
		return "an IPv6 zone names one of the sidecar's interfaces, not a host"
	case strings.ContainsFunc(host, func(c rune) bool { return c >= utf8.RuneSelf }):
		return "not an ASCII host name (write an international name in its xn-- form)"
	case tunnel:
		if allowed, _ := pol.Decide(host, port); allowed {
			return "no allowlist entry names this port for tunnels; send plain HTTP as an http:// proxy request"
		}
	}
	return "not on the allowlist"
}

// deny audits a refusal and answers it with 403 and the reason.
func (p *Proxy) deny(w http.ResponseWriter, rec Record, reason string) {
	rec.Decision, rec.Reason = DecisionDeny, reason
	p.audit.Record(rec)
	w.Header().Set("X-Bottle-Egress", "denied")
	http.Error(w, fmt.Sprintf("bottle egress: %s to %s refused: %s (rule %s)",
		rec.Method, net.JoinHostPort(rec.Host, strconv.Itoa(rec.Port)), reason, rec.Rule), http.StatusForbidden)
}

// refuseSecret answers a request that carries a secret. Neither the answer
// nor the audit record shows what the scanner matched: a method or a host
// that carries a secret is written as "(redacted)", and f.Where never quotes
// the request.
func (p *Proxy) refuseSecret(w http.ResponseWriter, r *http.Request, f *Finding) {
	host, port := requestTarget(r)
	if p.dlp.scanHost(r) != nil {
		host = redacted
	}
	method := r.Method
	if p.dlp.Scan("method", method) != nil {
		method = redacted
	}
	rec := p.record(EventDecision, method, host, port)
	rec.Decision, rec.Rule, rec.Reason = DecisionDeny, f.Rule, "carries a secret in the "+f.Where
	p.audit.Record(rec)
	w.Header().Set("X-Bottle-Egress", "denied")
	http.Error(w, fmt.Sprintf("bottle egress: %s refused: the request carries a secret in the %s (rule %s)", method, f.Where, f.Rule),
		http.StatusForbidden)
}

// redacted stands in for a method or host name that carries a secret.
const redacted = "(redacted)"

// requestTarget is the host and port a request asks for, as well as they
// can be read from a request that may be malformed.
func requestTarget(r *http.Request) (string, int) {
	authority := r.Host
	if r.Method != http.MethodConnect && r.URL != nil && r.URL.Host != "" {
		authority = r.URL.Host
	}
	h, ps, err := net.SplitHostPort(authority)
	if err != nil {
		h, ps = authority, ""
	}
	port, err := parsePort(ps)
	if err != nil {
		port = 0
		if r.Method != http.MethodConnect && r.URL != nil && r.URL.Scheme == "http" && ps == "" {
			port = 80
		}
	}
	return normalizeHost(h), port
}

// fail answers an allowed request whose upstream could not be used, and
// audits why.
func (p *Proxy) fail(w http.ResponseWriter, status int, method, host string, port int, rule string, err error) {
	rec := p.record(EventClose, method, host, port)
	rec.Decision, rec.Rule, rec.Reason = DecisionAllow, rule, err.Error()
	p.audit.Record(rec)
	http.Error(w, fmt.Sprintf("bottle egress: %s to %s failed: %v",
		method, net.JoinHostPort(host, strconv.Itoa(port)), err), status)
}

// badRequest refuses what is not a proxy request. It is audited as a denial
// so that every request the proxy receives leaves a line.
func (p *Proxy) badRequest(w http.ResponseWriter, r *http.Request, why string) {
	rec := p.record(EventDecision, r.Method, r.Host, 0)
	rec.Decision, rec.Rule, rec.Reason = DecisionDeny, ruleBadRequest, why
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
