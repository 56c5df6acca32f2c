package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startAskProxy serves a Proxy that asks about default-deny, holding a
// connection at most timeout, with loopback trusted.
func startAskProxy(t *testing.T, timeout time.Duration, opts Options) (addr string, p *Proxy, rec *recorder) {
	t.Helper()
	rec = newRecorder()
	opts.Audit, opts.Session, opts.AskTimeout = rec, "sess-1", timeout
	if opts.Policy == nil {
		opts.Policy = mustPolicy(t)
	}
	if opts.Trust == nil {
		opts.Trust = mustTrust(t, "127.0.0.0/8")
	}
	p = New(opts)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), p, rec
}

// firstByteUpstream accepts TCP connections on loopback and sends the first
// byte each one carries.
func firstByteUpstream(t testing.TB) (port int, first <-chan byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan byte, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				if _, err := io.ReadFull(c, b); err == nil {
					ch <- b[0]
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, ch
}

// heldRequest is a request sent to the proxy whose answer may not come yet.
type heldRequest struct {
	c    net.Conn
	br   *bufio.Reader
	resp chan *http.Response
}

// send writes req to the proxy and reads the response head in the
// background.
func send(t testing.TB, proxyAddr, req, method string) *heldRequest {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &heldRequest{c: c, br: bufio.NewReader(c), resp: make(chan *http.Response, 1)}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.ReadResponse(h.br, &http.Request{Method: method})
		if err != nil {
			close(h.resp)
			return
		}
		h.resp <- resp
	}()
	return h
}

func sendConnect(t testing.TB, proxyAddr, target string) *heldRequest {
	t.Helper()
	return send(t, proxyAddr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n", http.MethodConnect)
}

func (h *heldRequest) wait(t testing.TB) *http.Response {
	t.Helper()
	select {
	case resp, ok := <-h.resp:
		if !ok {
			t.Fatal("the proxy closed the connection without an answer")
		}
		return resp
	case <-time.After(5 * time.Second):
		t.Fatal("no answer from the proxy")
		return nil
	}
}

func (h *heldRequest) notAnswered(t *testing.T) {
	t.Helper()
	select {
	case resp := <-h.resp:
		t.Fatalf("answered %v while the question was pending", resp.Status)
	case <-time.After(50 * time.Millisecond):
	}
}

// checkAsk checks that got asks about method host:port and returns its id.
func checkAsk(t *testing.T, got Record, method, host string, port int) uint64 {
	t.Helper()
	if got.Event != EventAsk || got.Method != method || got.Host != host || got.Port != port || got.ID == 0 || got.Session != "sess-1" {
		t.Fatalf("record %+v, want a question about %s %s:%d", got, method, host, port)
	}
	return got.ID
}

// noRecord checks that nothing more was audited.
func (r *recorder) noRecord(t *testing.T) {
	t.Helper()
	select {
	case rec := <-r.ch:
		t.Errorf("unexpected record %+v", rec)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestHeldConnectWaitsForTheAnswer(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		answer  func(p *Proxy, id uint64)
		reason  string // "" means let through
	}{
		{name: "allow", timeout: time.Minute, answer: func(p *Proxy, id uint64) { p.Answer(id, true) }},
		{name: "deny", timeout: time.Minute, answer: func(p *Proxy, id uint64) { p.Answer(id, false) }, reason: "denied by the user"},
		{name: "an unknown id changes nothing, then no answer in time", timeout: 300 * time.Millisecond,
			answer: func(p *Proxy, id uint64) { p.Answer(id+1, true) }, reason: "no answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, first := firstByteUpstream(t)
			proxyAddr, p, rec := startAskProxy(t, tt.timeout, Options{})
			h := sendConnect(t, proxyAddr, "127.0.0.1:"+strconv.Itoa(port))
			id := checkAsk(t, rec.next(t), "CONNECT", "127.0.0.1", port)
			h.notAnswered(t)
			tt.answer(p, id)
			resp := h.wait(t)
			got := rec.next(t)
			if tt.reason != "" {
				if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, tt.reason) {
					t.Errorf("got %d %q, want 403 saying %q", resp.StatusCode, body, tt.reason)
				}
				checkRecord(t, got, "decision", "CONNECT", "127.0.0.1", port, "deny", "default-deny")
				if got.Reason != tt.reason {
					t.Errorf("reason %q, want %q", got.Reason, tt.reason)
				}
				p.Answer(id, true) // too late: ignored
				rec.noRecord(t)
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %s, want 200", resp.Status)
			}
			checkRecord(t, got, "decision", "CONNECT", "127.0.0.1", port, "allow", "approved")
			io.WriteString(h.c, "x")
			select {
			case b := <-first:
				if b != 'x' {
					t.Errorf("upstream got %q", b)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the approved tunnel carried nothing to the upstream")
			}
		})
	}
}

// TestAllowForTheSessionIsAPolicyChangeThenAnAnswer: the server's
// allowSession. The next connection is decided by the new entry, unasked.
func TestAllowForTheSessionIsAPolicyChangeThenAnAnswer(t *testing.T) {
	port, first := firstByteUpstream(t)
	target := "127.0.0.1:" + strconv.Itoa(port)
	proxyAddr, p, rec := startAskProxy(t, time.Minute, Options{Policy: mustPolicy(t, "a.test")})
	h := sendConnect(t, proxyAddr, target)
	id := checkAsk(t, rec.next(t), "CONNECT", "127.0.0.1", port)
	if err := p.SetPolicy([]string{"a.test", target}, nil, "approval"); err != nil {
		t.Fatal(err)
	}
	if got := rec.next(t); got.Event != EventPolicy || got.Decision != "allow" || got.Change != "allow +"+target || got.Client != "approval" {
		t.Errorf("policy record %+v", got)
	}
	p.Answer(id, true)
	if resp := h.wait(t); resp.StatusCode != http.StatusOK {
		t.Fatalf("got %s", resp.Status)
	}
	checkRecord(t, rec.next(t), "decision", "CONNECT", "127.0.0.1", port, "allow", "approved")
	c, _ := openTunnel(t, proxyAddr, target)
	checkRecord(t, rec.next(t), "decision", "CONNECT", "127.0.0.1", port, "allow", target)
	for _, c := range []net.Conn{h.c, c} {
		io.WriteString(c, "x")
		select {
		case <-first:
		case <-time.After(5 * time.Second):
			t.Fatal("a tunnel carried nothing to the upstream")
		}
	}
}

func TestConnectionsToOneTargetShareOneQuestion(t *testing.T) {
	port, _ := firstByteUpstream(t)
	target := "127.0.0.1:" + strconv.Itoa(port)
	proxyAddr, p, rec := startAskProxy(t, time.Minute, Options{})
	h1 := sendConnect(t, proxyAddr, target)
	id := checkAsk(t, rec.next(t), "CONNECT", "127.0.0.1", port)
	h2 := sendConnect(t, proxyAddr, target)
	waitFor(t, "both connections held", func() bool {
		p.ask.mu.Lock()
		defer p.ask.mu.Unlock()
		q := p.ask.byID[id]
		return q != nil && q.held == 2
	})
	rec.noRecord(t)
	p.Answer(id, true)
	for _, h := range []*heldRequest{h1, h2} {
		if resp := h.wait(t); resp.StatusCode != http.StatusOK {
			t.Errorf("got %s", resp.Status)
		}
		checkRecord(t, rec.next(t), "decision", "CONNECT", "127.0.0.1", port, "allow", "approved")
	}
	// Answered, the question is gone: the next connection asks anew.
	sendConnect(t, proxyAddr, target)
	if next := checkAsk(t, rec.next(t), "CONNECT", "127.0.0.1", port); next == id {
		t.Errorf("the answered question %d was asked again", id)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPlainHTTPRequestIsAskedAbout(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "reached") }))
	t.Cleanup(upstream.Close)
	_, port := hostPort(t, upstream.URL)
	proxyAddr, p, rec := startAskProxy(t, time.Minute, Options{})
	h := send(t, proxyAddr, "GET "+upstream.URL+"/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", http.MethodGet)
	id := checkAsk(t, rec.next(t), "GET", "127.0.0.1", port)
	h.notAnswered(t)
	p.Answer(id, true)
	if resp := h.wait(t); resp.StatusCode != http.StatusOK || readBody(t, resp) != "reached" {
		t.Errorf("got %s", resp.Status)
	}
	checkRecord(t, rec.next(t), "decision", "GET", "127.0.0.1", port, "allow", "approved")
}

func TestQuestionsAreRateLimitedAndBounded(t *testing.T) {
	proxyAddr, p, rec := startAskProxy(t, time.Hour, Options{})
	port := 1
	ask := func(t *testing.T, n int) {
		t.Helper()
		for range n {
			sendConnect(t, proxyAddr, "127.0.0.1:"+strconv.Itoa(port))
			checkAsk(t, rec.next(t), "CONNECT", "127.0.0.1", port)
			port++
		}
	}
	refused := func(t *testing.T) {
		t.Helper()
		resp := sendConnect(t, proxyAddr, "127.0.0.1:"+strconv.Itoa(port)).wait(t)
		if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "too many questions") {
			t.Errorf("got %d %q, want 403 saying too many questions", resp.StatusCode, body)
		}
		got := rec.next(t)
		checkRecord(t, got, "decision", "CONNECT", "127.0.0.1", port, "deny", "default-deny")
		if got.Reason != "too many questions" {
			t.Errorf("reason %q", got.Reason)
		}
	}
	// As if a minute had passed since the questions so far were asked.
	forget := func() {
		p.ask.mu.Lock()
		p.ask.asked = nil
		p.ask.mu.Unlock()
	}

	ask(t, askRate)
	refused(t)
	forget()
	ask(t, maxPending-askRate)
	forget()
	refused(t)
	p.Answer(1, false)
	checkRecord(t, rec.next(t), "decision", "CONNECT", "127.0.0.1", 1, "deny", "default-deny")
	ask(t, 1)
}

// TestOnlyDefaultDenyIsAskedAbout: every other refusal that needs no DNS
// comes at once and asks nothing. An approval lifts none: a name is looked
// up only once approved (before, the lookup itself would carry the name
// out), then its addresses are checked; and a tunnel's ClientHello is still
// checked.
func TestOnlyDefaultDenyIsAskedAbout(t *testing.T) {
	res := &stubResolver{names: map[string][]string{
		"blocked.test":  {"127.0.0.1"},
		"to-block.test": {"127.0.0.9"},
		"private.test":  {"10.0.0.1"},
		"approve.test":  {"127.0.0.1"},
	}}
	scanner, err := NewScanner(DLPConfig{Secrets: []Secret{{Name: "TOKEN", Value: "a-secret-value-123"}}})
	if err != nil {
		t.Fatal(err)
	}
	policy := mustPolicy(t, "tls.test")
	if err := policy.Block([]string{"blocked.test", "127.0.0.9"}); err != nil {
		t.Fatal(err)
	}
	proxyAddr, p, rec := startAskProxy(t, time.Minute, Options{
		Policy: policy, Resolver: res, DLP: scanner, Trust: mustTrust(t, "blocked.test", "to-block.test", "approve.test", "tls.test"),
	})
	tests := []struct {
		name, req, host string
		port            int
		rule            string
	}{
		{"blocklisted name", "CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n\r\n", "blocked.test", 443, "block:blocked.test"},
		{"blocklisted IP literal", "CONNECT 127.0.0.9:443 HTTP/1.1\r\n\r\n", "127.0.0.9", 443, "block:127.0.0.9"},
		{"private IP literal", "CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n", "169.254.169.254", 80, "ssrf-guard"},
		{"plain HTTP to a private IP literal", "GET http://10.1.2.3/ HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n", "10.1.2.3", 80, "ssrf-guard"},
		{"secret", "CONNECT approve.test:443 HTTP/1.1\r\nX-Token: a-secret-value-123\r\n\r\n", "approve.test", 443, "dlp:secret:TOKEN"},
		{"not an ASCII name", "CONNECT bücher.test:443 HTTP/1.1\r\n\r\n", "bücher.test", 443, "default-deny"},
		{"bad port", "CONNECT approve.test:0 HTTP/1.1\r\n\r\n", "approve.test", 0, "bad-request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, _, _ := strings.Cut(tt.req, " ")
			resp := send(t, proxyAddr, tt.req, method).wait(t)
			if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest {
				t.Errorf("got %s, want a refusal", resp.Status)
			}
			got := rec.next(t)
			if got.Event != EventDecision || got.Decision != "deny" || got.Rule != tt.rule {
				t.Errorf("record %+v, want a refusal by %s", got, tt.rule)
			}
		})
	}
	for _, tt := range []struct{ host, rule string }{{"to-block.test", "block:127.0.0.9"}, {"private.test", "ssrf-guard"}} {
		t.Run("approved name resolving to an address refused by "+tt.rule, func(t *testing.T) {
			lookups := res.lookups.Load()
			h := sendConnect(t, proxyAddr, tt.host+":443")
			id := checkAsk(t, rec.next(t), "CONNECT", tt.host, 443)
			if n := res.lookups.Load(); n != lookups {
				t.Errorf("%d lookups before the answer: an unapproved name left through DNS", n-lookups)
			}
			p.Answer(id, true)
			if resp := h.wait(t); resp.StatusCode != http.StatusForbidden {
				t.Errorf("got %s, want 403", resp.Status)
			}
			checkRecord(t, rec.next(t), "decision", "CONNECT", tt.host, 443, "deny", tt.rule)
		})
	}
	t.Run("a ClientHello naming another host in an approved tunnel", func(t *testing.T) {
		port, first := firstByteUpstream(t)
		h := sendConnect(t, proxyAddr, "approve.test:"+strconv.Itoa(port))
		p.Answer(checkAsk(t, rec.next(t), "CONNECT", "approve.test", port), true)
		if resp := h.wait(t); resp.StatusCode != http.StatusOK {
			t.Fatalf("got %s", resp.Status)
		}
		checkRecord(t, rec.next(t), "decision", "CONNECT", "approve.test", port, "allow", "approved")
		h.c.Write(clientHelloRecord(t, &tls.Config{ServerName: "other.test"}))
		if !tunnelRefused(t, h.c, h.br) {
			t.Error("the tunnel carried a ClientHello for another host")
		}
		checkRecord(t, rec.next(t), "decision", "CONNECT", "approve.test", port, "deny", "sni-mismatch")
		select {
		case <-first:
			t.Error("the ClientHello reached the upstream")
		default:
		}
	})
}

func TestStopAskingRefusesPendingQuestionsAndAsksNoMore(t *testing.T) {
	proxyAddr, p, rec := startAskProxy(t, time.Minute, Options{})
	h := sendConnect(t, proxyAddr, "127.0.0.1:1")
	checkAsk(t, rec.next(t), "CONNECT", "127.0.0.1", 1)
	p.StopAsking()
	for _, resp := range []*http.Response{h.wait(t), sendConnect(t, proxyAddr, "127.0.0.1:2").wait(t)} {
		if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "no one is left to ask") {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
		if got := rec.next(t); got.Event != EventDecision || got.Decision != "deny" || got.Rule != "default-deny" {
			t.Errorf("record %+v", got)
		}
	}
}

func TestSetPolicy(t *testing.T) {
	tests := []struct {
		name                           string
		allow, block                   []string
		wantErr, wantChange            string
		wantAllowed, wantStillRefusing []string // CONNECT targets after the change
	}{
		{name: "adds and removes", allow: []string{"b.test:443", "c.test"}, block: []string{"x.c.test"},
			wantChange: "allow +b.test:443 +c.test -a.test; block +x.c.test", wantAllowed: []string{"b.test:443", "c.test:443"},
			wantStillRefusing: []string{"a.test:443"}},
		{name: "unchanged", allow: []string{"a.test"}, wantChange: "unchanged", wantAllowed: []string{"a.test:443"}},
		{name: "empties", wantChange: "allow -a.test", wantStillRefusing: []string{"a.test:443"}},
		{name: "a bad entry changes nothing", allow: []string{"b.test", "https://c.test"}, wantErr: `allow entry "https://c.test"`,
			wantAllowed: []string{"a.test:443"}, wantStillRefusing: []string{"b.test:443"}},
		{name: "a bad block entry changes nothing", allow: []string{"b.test"}, block: []string{"a/b"}, wantErr: `block entry "a/b"`,
			wantAllowed: []string{"a.test:443"}, wantStillRefusing: []string{"b.test:443"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			p := New(Options{Policy: mustPolicy(t, "a.test"), Audit: rec, Session: "s"})
			err := p.SetPolicy(tt.allow, tt.block, "editor (test 1.0)")
			got := rec.next(t)
			if got.Event != EventPolicy || got.Client != "editor (test 1.0)" || got.Session != "s" {
				t.Errorf("record %+v", got)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("SetPolicy = %v, want %q", err, tt.wantErr)
				}
				if got.Decision != "deny" || !strings.Contains(got.Reason, tt.wantErr) || got.Change != "" {
					t.Errorf("record %+v, want a refusal naming %q", got, tt.wantErr)
				}
			} else if err != nil || got.Decision != "allow" || got.Change != tt.wantChange {
				t.Errorf("SetPolicy = %v, record %+v, want change %q", err, got, tt.wantChange)
			}
			for _, target := range tt.wantAllowed {
				if host, port := splitTarget(t, target); !decided(p, host, port) {
					t.Errorf("%s refused after the change", target)
				}
			}
			for _, target := range tt.wantStillRefusing {
				if host, port := splitTarget(t, target); decided(p, host, port) {
					t.Errorf("%s allowed after the change", target)
				}
			}
		})
	}
}

func decided(p *Proxy, host string, port int) bool {
	allowed, _, _ := p.policy.Load().DecideTunnel(host, port)
	return allowed
}

func splitTarget(t *testing.T, target string) (string, int) {
	t.Helper()
	h, ps, err := net.SplitHostPort(target)
	if err != nil {
		t.Fatal(err)
	}
	return h, atoi(ps)
}

// controlPipe is the server's end of a sidecar's stdin.
type controlPipe struct {
	t *testing.T
	w *io.PipeWriter
}

func (c controlPipe) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.w, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

// startRunOnStdin runs the proxy as the sidecar does: the config as one
// line on a stdin that stays open, then control lines.
func startRunOnStdin(t *testing.T, cfg Config) (addr string, stdin controlPipe, audit *syncBuffer) {
	t.Helper()
	r, w := io.Pipe()
	t.Cleanup(func() { w.Close() })
	line, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go w.Write(append(line, '\n'))
	type read struct {
		cfg  Config
		rest io.Reader
		err  error
	}
	got := make(chan read, 1)
	go func() {
		cfg, rest, err := ReadConfigStream(r)
		got <- read{cfg, rest, err}
	}()
	var rd read
	select {
	case rd = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the config was not read while stdin stayed open")
	}
	if rd.err != nil {
		t.Fatal(rd.err)
	}
	addr, _, _, audit = startRunControlled(t, rd.cfg, rd.rest, defaultLimits)
	return addr, controlPipe{t, w}, audit
}

// waitRecord waits until audit holds a record that match accepts.
func waitRecord(t *testing.T, audit *syncBuffer, match func(Record) bool) Record {
	t.Helper()
	var found Record
	waitFor(t, "an audit record", func() bool {
		for _, r := range audit.records(t) {
			if match(r) {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// TestRunAppliesPolicyLinesWithoutDroppingOpenTunnels: a new allowlist lets
// a new target through and refuses one it no longer names, while a tunnel
// opened under the old one goes on carrying bytes both ways.
func TestRunAppliesPolicyLinesWithoutDroppingOpenTunnels(t *testing.T) {
	old, next := startEcho(t), startEcho(t)
	addr, stdin, audit := startRunOnStdin(t, Config{Listen: "127.0.0.1:0", Session: "s", Allow: []string{old}, Trusted: []string{"127.0.0.1"}})
	open, br := openTunnel(t, addr, old)
	echo := func(what string) {
		t.Helper()
		io.WriteString(open, what)
		b := make([]byte, len(what))
		open.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(br, b); err != nil || string(b) != what {
			t.Fatalf("open tunnel echoed %q, %v; want %q", b, err, what)
		}
	}
	echo("before")

	stdin.send(`{"op":"policy","allow":["` + next + `"],"client":"editor (test)"}`)
	got := waitRecord(t, audit, func(r Record) bool { return r.Event == EventPolicy })
	if got.Decision != "allow" || got.Change != "allow +"+next+" -"+old || got.Client != "editor (test)" || got.Session != "s" {
		t.Errorf("policy record %+v", got)
	}
	echo("after")
	c, _ := openTunnel(t, addr, next)
	c.Close()
	_, _, resp := rawRequest(t, addr, "CONNECT "+old+" HTTP/1.1\r\n\r\n", "CONNECT")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT %s after its entry was removed: %s", old, resp.Status)
	}
	echo("still")
}

// TestRunSkipsBadControlLines: a policy with a bad entry is refused and
// audited and changes nothing; a line that is not a control object is
// logged and skipped; the lines after them still apply.
func TestRunSkipsBadControlLines(t *testing.T) {
	echo := startEcho(t)
	addr, stdin, audit := startRunOnStdin(t, Config{Listen: "127.0.0.1:0", Allow: []string{echo}, Trusted: []string{"127.0.0.1"}})
	stdin.send(`{"op":"policy","allow":["b.test","https://c.test"],"client":"editor"}`)
	got := waitRecord(t, audit, func(r Record) bool { return r.Event == EventPolicy })
	if got.Decision != "deny" || !strings.Contains(got.Reason, `"https://c.test"`) || got.Client != "editor" {
		t.Errorf("policy record %+v, want a refusal naming the entry", got)
	}
	c, _ := openTunnel(t, addr, echo)
	c.Close()
	stdin.send(`not json`)
	stdin.send(`{"op":"reboot"}`)
	stdin.send(`{"op":"policy","allow":[],"client":"editor"}`)
	waitRecord(t, audit, func(r Record) bool { return r.Event == EventPolicy && r.Decision == "allow" })
	_, _, resp := rawRequest(t, addr, "CONNECT "+echo+" HTTP/1.1\r\n\r\n", "CONNECT")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT after the allowlist was emptied: %s", resp.Status)
	}
}

// TestRunAsksOnStdoutAndTakesAnswersOnStdin: the wire form of a question
// and its answer, and EOF on stdin refusing what is pending.
func TestRunAsksOnStdoutAndTakesAnswersOnStdin(t *testing.T) {
	port, first := firstByteUpstream(t)
	target := "127.0.0.1:" + strconv.Itoa(port)
	addr, stdin, audit := startRunOnStdin(t, Config{Listen: "127.0.0.1:0", Session: "s", Trusted: []string{"127.0.0.1"}, Ask: true, AskTimeout: "1m"})
	h := sendConnect(t, addr, target)
	q := waitRecord(t, audit, func(r Record) bool { return r.Event == EventAsk })
	if q.Method != "CONNECT" || q.Host != "127.0.0.1" || q.Port != port || q.ID != 1 || q.Session != "s" || q.Decision != "" {
		t.Errorf("question %+v", q)
	}
	if !strings.Contains(audit.String(), `{"time":`) || !strings.Contains(audit.String(), `"event":"ask"`) || !strings.Contains(audit.String(), `"id":1`) {
		t.Errorf("question line %q", audit.String())
	}
	stdin.send(`{"op":"answer","id":1,"decision":"allow"}`)
	if resp := h.wait(t); resp.StatusCode != http.StatusOK {
		t.Fatalf("got %s", resp.Status)
	}
	io.WriteString(h.c, "x")
	select {
	case <-first:
	case <-time.After(5 * time.Second):
		t.Fatal("the approved tunnel carried nothing")
	}

	held := sendConnect(t, addr, target)
	waitRecord(t, audit, func(r Record) bool { return r.Event == EventAsk && r.ID == 2 })
	stdin.w.Close()
	for _, resp := range []*http.Response{held.wait(t), sendConnect(t, addr, "127.0.0.1:1").wait(t)} {
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("got %s after stdin ended, want 403", resp.Status)
		}
	}
	for _, r := range audit.records(t) {
		if r.Event == EventAsk && r.ID > 2 {
			t.Errorf("asked after stdin ended: %+v", r)
		}
	}
}

func TestRunRefusesABadAskTimeout(t *testing.T) {
	for _, timeout := range []string{"soon", "0s", "-1s"} {
		err := Run(context.Background(), Config{Listen: "127.0.0.1:0", Ask: true, AskTimeout: timeout}, nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "askTimeout") {
			t.Errorf("askTimeout %q: Run = %v, want an error naming askTimeout", timeout, err)
		}
	}
}
