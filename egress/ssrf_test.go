package egress

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// stubResolver answers lookups from a table and counts them.
type stubResolver struct {
	names   map[string][]string
	lookups atomic.Int32
}

func (s *stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	s.lookups.Add(1)
	addrs, ok := s.names[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// startProxyWith serves a Proxy made from opts (Audit is set here) on
// loopback.
func startProxyWith(t *testing.T, opts Options) (addr string, rec *recorder) {
	t.Helper()
	rec = newRecorder()
	opts.Audit = rec
	if opts.Session == "" {
		opts.Session = "sess-1"
	}
	srv := httptest.NewServer(New(opts))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), rec
}

func mustPolicy(t testing.TB, allow ...string) *Policy {
	t.Helper()
	p, err := NewPolicy(allow)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustTrust(t testing.TB, entries ...string) *Trust {
	t.Helper()
	tr, err := NewTrust(entries)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestPublicAddrClassifiesEveryNonPublicRange(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
		kind   string
	}{
		{"93.184.216.34", true, ""},
		{"2606:4700::1111", true, ""},
		{"127.0.0.1", false, "loopback"},
		{"127.255.0.9", false, "loopback"},
		{"::1", false, "loopback"},
		{"10.213.0.2", false, "private"},
		{"172.17.0.1", false, "private"},
		{"192.168.1.1", false, "private"},
		{"fd00::2", false, "private"},
		{"169.254.169.254", false, "link-local"},
		{"fe80::1", false, "link-local"},
		{"0.0.0.0", false, "unspecified"},
		{"::", false, "unspecified"},
		{"0.1.2.3", false, "reserved"},
		{"100.64.0.1", false, "reserved"},
		{"192.0.0.170", false, "reserved"},
		{"198.18.0.1", false, "reserved"},
		{"240.0.0.1", false, "reserved"},
		{"255.255.255.255", false, "reserved"},
		{"224.0.0.251", false, "multicast"},
		{"ff02::1", false, "multicast"},
		{"::ffff:127.0.0.1", false, "loopback"},
		{"::ffff:169.254.169.254", false, "link-local"},
		{"64:ff9b::a9fe:a9fe", false, "link-local"},                 // NAT64 of 169.254.169.254
		{"64:ff9b::5db8:d822", true, ""},                            // NAT64 of 93.184.216.34
		{"2002:7f00:1::1", false, "loopback"},                       // 6to4 of 127.0.0.1
		{"2002:0a00:0001::1", false, "private"},                     // 6to4 of 10.0.0.1
		{"2001:db8::1", false, "reserved"},                          // documentation
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false, "reserved"}, // Teredo
		{"::127.0.0.1", false, "reserved"},                          // IPv4-compatible
		{"192.0.2.1", false, "reserved"},                            // documentation
		{"198.51.100.7", false, "reserved"},                         // documentation
		{"203.0.113.9", false, "reserved"},                          // documentation
		{"3fff::1", false, "reserved"},                              // documentation
		{"::ffff:203.0.113.9", false, "reserved"},                   // IPv4-mapped documentation
		{"::ffff:0:7f00:1", false, "reserved"},                      // IPv4-translated 127.0.0.1
		{"::ffff:0:5db8:d822", false, "reserved"},                   // IPv4-translated 93.184.216.34
		{"::ffff:0.0.0.0", false, "unspecified"},                    // IPv4-mapped unspecified
		{"192.88.99.1", false, "reserved"},                          // 6to4 relay anycast
		{"2001:2::1", false, "reserved"},                            // benchmarking
		{"5f00::1", false, "reserved"},                              // SRv6
		{"::ffff:93.184.216.34", true, ""},                          // IPv4-mapped public: dialled as IPv4
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			public, kind := publicAddr(netip.MustParseAddr(tt.addr))
			if public != tt.public || kind != tt.kind {
				t.Errorf("publicAddr(%s) = %v, %q; want %v, %q", tt.addr, public, kind, tt.public, tt.kind)
			}
		})
	}
}

func TestNewTrustRejectsBadEntries(t *testing.T) {
	tests := []struct{ entry, why string }{
		{"", "empty"},
		{"git.test:22", "no port"},
		{"10.0.0.0/33", "CIDR"},
		{"a b", "not a host name"},
		{"*.", "not a host name"},
		{"127.1", "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			_, err := NewTrust([]string{tt.entry})
			if err == nil || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), strconv.Quote(tt.entry)) {
				t.Errorf("NewTrust(%q) = %v, want an error naming it and saying %q", tt.entry, err, tt.why)
			}
		})
	}
}

func TestTrustMatchesNamesWildcardsAndRanges(t *testing.T) {
	tr := mustTrust(t, "git.test", "*.corp.test", "10.20.0.0/16", "fd00::1")
	for _, h := range []string{"git.test", "a.corp.test", "a.b.corp.test"} {
		if !tr.Host(h) {
			t.Errorf("%s not trusted", h)
		}
	}
	for _, h := range []string{"corp.test", "agit.test", "git.test.evil"} {
		if tr.Host(h) {
			t.Errorf("%s trusted", h)
		}
	}
	for _, a := range []string{"10.20.3.4", "::ffff:10.20.0.1", "fd00::1"} {
		if !tr.Addr(netip.MustParseAddr(a)) {
			t.Errorf("%s not trusted", a)
		}
	}
	for _, a := range []string{"10.21.0.1", "fd00::2"} {
		if tr.Addr(netip.MustParseAddr(a)) {
			t.Errorf("%s trusted", a)
		}
	}
}

// TestSSRFGuard sends proxy requests for names that resolve to addresses
// which are not public. The upstream listens on loopback, so every name
// here resolves (through a stub) to something a real attacker would love
// to reach from the sidecar.
func TestSSRFGuard(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "reached")
	}))
	defer upstream.Close()
	_, port := hostPort(t, upstream.URL)
	res := &stubResolver{names: map[string][]string{
		"local.test":    {"127.0.0.1"},
		"mapped.test":   {"::ffff:127.0.0.1"},
		"metadata.test": {"169.254.169.254"},
		"private.test":  {"10.213.0.2"},
		"mixed.test":    {"93.184.216.34", "127.0.0.1"},
		"a.corp.test":   {"127.0.0.1"},
	}}
	ps := strconv.Itoa(port)
	tests := []struct {
		name, host string
		trust      []string
		reached    bool
		kind, addr string
	}{
		{"loopback name refused", "local.test", nil, false, "loopback", "127.0.0.1"},
		{"IPv4-mapped loopback refused", "mapped.test", nil, false, "loopback", "127.0.0.1"},
		{"metadata address refused", "metadata.test", nil, false, "link-local", "169.254.169.254"},
		{"private address refused", "private.test", nil, false, "private", "10.213.0.2"},
		{"one private address among public ones refused", "mixed.test", nil, false, "loopback", "127.0.0.1"},
		{"trusted name reaches it", "local.test", []string{"local.test"}, true, "", ""},
		{"trusted wildcard reaches it", "a.corp.test", []string{"*.corp.test"}, true, "", ""},
		{"trusted range reaches it", "local.test", []string{"127.0.0.0/8"}, true, "", ""},
		{"trust of another name does not help", "local.test", []string{"other.test", "*.local.test"}, false, "loopback", "127.0.0.1"},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "CONNECT"} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				proxyAddr, rec := startProxyWith(t, Options{
					Policy:   mustPolicy(t, tt.host+":"+ps),
					Trust:    mustTrust(t, tt.trust...),
					Resolver: res,
				})
				target := net.JoinHostPort(tt.host, ps)
				var status int
				var body string
				if method == "GET" {
					_, _, resp := rawRequest(t, proxyAddr, "GET http://"+target+"/ HTTP/1.1\r\nHost: "+target+"\r\n\r\n", "GET")
					status, body = resp.StatusCode, readBody(t, resp)
				} else {
					c, br, resp := rawRequest(t, proxyAddr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n", "CONNECT")
					status = resp.StatusCode
					if status == http.StatusOK {
						io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
						inner, err := http.ReadResponse(br, nil)
						if err != nil {
							t.Fatal(err)
						}
						body = readBody(t, inner)
					} else {
						body = readBody(t, resp)
					}
				}
				got := rec.next(t)
				if tt.reached {
					if status != http.StatusOK || body != "reached" {
						t.Errorf("got %d %q, want the upstream", status, body)
					}
					if got.Decision != "allow" || got.Rule != target {
						t.Errorf("record = %+v, want an allow by %s", got, target)
					}
					return
				}
				want := tt.host + " resolves to " + tt.kind + " address " + tt.addr
				if status != http.StatusForbidden || !strings.Contains(body, want) || !strings.Contains(body, "rule ssrf-guard") {
					t.Errorf("got %d %q, want 403 saying %q", status, body, want)
				}
				if got.Decision != "deny" || got.Rule != "ssrf-guard" || !strings.Contains(got.Reason, want) || got.Host != tt.host {
					t.Errorf("record = %+v, want a deny by ssrf-guard", got)
				}
			})
		}
	}
}

func TestForwardDialsTheCheckedAddressWithoutLookingUpAgain(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "host "+r.Host)
	}))
	defer upstream.Close()
	_, port := hostPort(t, upstream.URL)
	res := &stubResolver{names: map[string][]string{"app.test": {"127.0.0.1"}}}
	proxyAddr, _ := startProxyWith(t, Options{
		Policy: mustPolicy(t, "app.test:*"), Trust: mustTrust(t, "app.test"), Resolver: res,
	})
	client := proxyClient(proxyAddr, &http.Transport{})
	for i := range 3 {
		resp, err := client.Get("http://app.test:" + strconv.Itoa(port) + "/")
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, resp); body != "host app.test:"+strconv.Itoa(port) {
			t.Errorf("request %d: body %q, want the Host header as sent", i, body)
		}
	}
	// One lookup: the proxy's own, reused for a few seconds; the
	// transport's dial never looks the name up again.
	if n := res.lookups.Load(); n != 1 {
		t.Errorf("%d lookups for 3 requests, want 1", n)
	}
}

func TestLookupFailureIs502AfterAnAllowDecision(t *testing.T) {
	proxyAddr, rec := startProxyWith(t, Options{Policy: mustPolicy(t, "gone.test"), Resolver: &stubResolver{}})
	_, _, resp := rawRequest(t, proxyAddr, "CONNECT gone.test:443 HTTP/1.1\r\nHost: gone.test:443\r\n\r\n", "CONNECT")
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "no such host") {
		t.Errorf("got %d %q, want 502 saying no such host", resp.StatusCode, body)
	}
	checkRecord(t, rec.next(t), "decision", "CONNECT", "gone.test", 443, "allow", "gone.test")
	if got := rec.next(t); got.Event != "close" || !strings.Contains(got.Reason, "no such host") {
		t.Errorf("close record = %+v", got)
	}
}

func TestBlocklistBeatsTheAllowlist(t *testing.T) {
	p := mustPolicy(t, "*.example.com", "paste.example.com:*")
	if err := p.Block([]string{"paste.example.com", "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host    string
		port    int
		allowed bool
		rule    string
	}{
		{"api.example.com", 443, true, "*.example.com"},
		{"paste.example.com", 443, false, "block:paste.example.com"},
		{"PASTE.example.com.", 22, false, "block:paste.example.com"}, // no port in a block entry: every port
		{"10.0.0.1", 80, false, "block:10.0.0.1"},
	}
	for _, tt := range tests {
		if allowed, rule := p.Decide(tt.host, tt.port); allowed != tt.allowed || rule != tt.rule {
			t.Errorf("Decide(%s, %d) = %v %q, want %v %q", tt.host, tt.port, allowed, rule, tt.allowed, tt.rule)
		}
	}
	if err := p.Block([]string{"https://x"}); err == nil || !strings.Contains(err.Error(), `block entry "https://x"`) {
		t.Errorf("bad block entry: %v", err)
	}
}

func TestBlockedRequestSays403Blocklist(t *testing.T) {
	p := mustPolicy(t, "*.example.com")
	if err := p.Block([]string{"*.paste.example.com"}); err != nil {
		t.Fatal(err)
	}
	proxyAddr, rec := startProxyWith(t, Options{Policy: p, Resolver: &stubResolver{}})
	_, _, resp := rawRequest(t, proxyAddr, "CONNECT a.paste.example.com:443 HTTP/1.1\r\nHost: a.paste.example.com:443\r\n\r\n", "CONNECT")
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "on the blocklist (rule block:*.paste.example.com)") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	checkRecord(t, rec.next(t), "decision", "CONNECT", "a.paste.example.com", 443, "deny", "block:*.paste.example.com")
}

// tlsThroughProxy opens a CONNECT tunnel to target and starts TLS in it
// naming serverName, and returns what the upstream answered.
func tlsThroughProxy(t *testing.T, proxyAddr, target, serverName string) (string, error) {
	t.Helper()
	c, br := openTunnel(t, proxyAddr, target)
	defer c.Close() // ends the tunnel, so that its close record follows
	tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return "", err
	}
	io.WriteString(tc, "GET / HTTP/1.1\r\nHost: "+serverName+"\r\nConnection: close\r\n\r\n")
	b, err := io.ReadAll(tc)
	return string(b), err
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func TestAFailedDialForgetsTheLookup(t *testing.T) {
	_, port := closedPort(t)
	res := &stubResolver{names: map[string][]string{"flaky.test": {"127.0.0.1"}}}
	proxyAddr, _ := startProxyWith(t, Options{
		Policy: mustPolicy(t, "flaky.test:*"), Trust: mustTrust(t, "flaky.test"), Resolver: res,
	})
	for range 2 {
		_, _, resp := rawRequest(t, proxyAddr, "CONNECT flaky.test:"+strconv.Itoa(port)+" HTTP/1.1\r\nHost: x\r\n\r\n", "CONNECT")
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", resp.StatusCode)
		}
	}
	if n := res.lookups.Load(); n != 2 {
		t.Errorf("%d lookups, want 2: a failed dial must not leave its answer cached", n)
	}
}

// resolverFunc answers lookups with a function.
type resolverFunc func(host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return f(host)
}

// proxyGet sends a plain HTTP proxy request, or opens a CONNECT tunnel, for
// target and returns the proxy's status and body. The Host header, which
// the request target overrides, is ASCII whatever target is.
func proxyGet(t *testing.T, proxyAddr, method, target string) (int, string) {
	t.Helper()
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: proxy.test\r\n\r\n"
	if method == "GET" {
		req = "GET http://" + target + "/ HTTP/1.1\r\nHost: proxy.test\r\n\r\n"
	}
	_, _, resp := rawRequest(t, proxyAddr, req, method)
	if resp.StatusCode == http.StatusOK && method == "CONNECT" {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, readBody(t, resp)
}

func TestBlocklistAppliesToTheAddressesANameResolvesTo(t *testing.T) {
	port, reached := startCountingUpstream(t)
	ps := strconv.Itoa(port)
	p := mustPolicy(t, "*.example.test:*")
	if err := p.Block([]string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	res := &stubResolver{names: map[string][]string{
		"sneaky.example.test": {"127.0.0.1"},
		"mapped.example.test": {"::ffff:127.0.0.1"},
		"mixed.example.test":  {"127.0.0.2", "127.0.0.1"},
	}}
	// Trusted, so that the SSRF guard does not refuse them first.
	proxyAddr, rec := startProxyWith(t, Options{Policy: p, Trust: mustTrust(t, "*.example.test"), Resolver: res})
	for host := range res.names {
		for _, method := range []string{"GET", "CONNECT"} {
			t.Run(host+" "+method, func(t *testing.T) {
				status, body := proxyGet(t, proxyAddr, method, net.JoinHostPort(host, ps))
				if status != http.StatusForbidden || !strings.Contains(body, "resolves to 127.0.0.1, which is on the blocklist (rule block:127.0.0.1)") {
					t.Errorf("got %d %q, want 403 naming the blocked address", status, body)
				}
				checkRecord(t, rec.next(t), "decision", method, host, port, "deny", "block:127.0.0.1")
			})
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the blocked address was reached %d times", n)
	}
}

// TestNamesAndAddressesAtTheEdges: a name is decided and sent upstream in
// one form, and an address that is no host's is never dialled, trusted or
// not.
func TestNamesAndAddressesAtTheEdges(t *testing.T) {
	port, reached := startCountingUpstream(t)
	ps := strconv.Itoa(port)
	res := resolverFunc(func(host string) ([]netip.Addr, error) {
		switch host {
		case "key.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "zero.test":
			return []netip.Addr{netip.MustParseAddr("0.0.0.0")}, nil
		case "zero6.test":
			return []netip.Addr{netip.MustParseAddr("::")}, nil
		case "zeromapped.test":
			return []netip.Addr{netip.MustParseAddr("::ffff:0.0.0.0")}, nil
		case "invalid.test":
			return []netip.Addr{{}}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	})
	tests := []struct {
		name, host, rule, says string
	}{
		{"Kelvin sign", "\u212aey.test", "default-deny", "not an ASCII host name"},
		{"percent-encoded Kelvin sign", "%E2%84%AAey.test", "default-deny", "not an ASCII host name"},
		{"zero address", "zero.test", "ssrf-guard", "resolves to unspecified address 0.0.0.0, which is never dialled"},
		{"zero IPv6 address", "zero6.test", "ssrf-guard", "resolves to unspecified address ::"},
		{"zero IPv4-mapped address", "zeromapped.test", "ssrf-guard", "resolves to unspecified address 0.0.0.0"},
		{"invalid address", "invalid.test", "ssrf-guard", "resolves to invalid address"},
	}
	// Everything is trusted, by name and by range: none of it may help.
	proxyAddr, rec := startProxyWith(t, Options{
		Policy:   mustPolicy(t, "key.test:*", "*.test:*"),
		Trust:    mustTrust(t, "*.test", "key.test", "0.0.0.0/0", "::/0"),
		Resolver: res,
	})
	for _, tt := range tests {
		for _, method := range []string{"GET", "CONNECT"} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				status, body := proxyGet(t, proxyAddr, method, tt.host+":"+ps)
				if status != http.StatusForbidden || !strings.Contains(body, tt.says) || !strings.Contains(body, "rule "+tt.rule) {
					t.Errorf("got %d %q, want 403 saying %q", status, body, tt.says)
				}
				if got := rec.next(t); got.Decision != "deny" || got.Rule != tt.rule {
					t.Errorf("record = %+v, want a deny by %s", got, tt.rule)
				}
			})
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the upstream was reached %d times", n)
	}
	// Control: the ASCII name is the one that gets through.
	if status, body := proxyGet(t, proxyAddr, "GET", "key.test:"+ps); status != http.StatusOK || body != "reached key.test:"+ps {
		t.Errorf("control: got %d %q", status, body)
	}
}
