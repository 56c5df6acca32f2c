package egress

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recorder is an Auditor that hands records to the test in order.
type recorder struct{ ch chan Record }

func newRecorder() *recorder { return &recorder{ch: make(chan Record, 100)} }

func (r *recorder) Record(rec Record) { r.ch <- rec }

func (r *recorder) next(t *testing.T) Record {
	t.Helper()
	select {
	case rec := <-r.ch:
		return rec
	case <-time.After(5 * time.Second):
		t.Fatal("no audit record")
		return Record{}
	}
}

// startProxy serves a Proxy with the allowlist allow on loopback.
func startProxy(t *testing.T, allow ...string) (addr string, rec *recorder) {
	t.Helper()
	policy, err := NewPolicy(allow)
	if err != nil {
		t.Fatal(err)
	}
	rec = newRecorder()
	srv := httptest.NewServer(NewProxy(policy, rec, "sess-1"))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), rec
}

func proxyClient(proxyAddr string, base *http.Transport) *http.Client {
	tr := base.Clone()
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})
	return &http.Client{Transport: tr}
}

// hostPort returns the host:port of a test server URL and its port.
func hostPort(t testing.TB, rawURL string) (string, int) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return u.Host, port
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	return addr.String(), addr.Port
}

// startEcho serves a TCP echo on loopback: it sends back what it reads and
// closes once the client has finished sending.
func startEcho(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// rawRequest writes req to the proxy as is and reads the response head.
func rawRequest(t *testing.T, proxyAddr, req, method string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkRecord(t *testing.T, got Record, event, method, host string, port int, decision, rule string) {
	t.Helper()
	if got.Event != event || got.Method != method || got.Host != host || got.Port != port ||
		got.Decision != decision || got.Rule != rule || got.Session != "sess-1" || got.Time.IsZero() {
		t.Errorf("record = %+v, want event %s %s %s:%d %s by %q in sess-1", got, event, method, host, port, decision, rule)
	}
}

func TestForwardRelaysAllowedPlainHTTP(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "path=%s query=%s", r.URL.Path, r.URL.RawQuery)
	}))
	defer upstream.Close()
	target, port := hostPort(t, upstream.URL)
	proxyAddr, rec := startProxy(t, target)

	resp, err := proxyClient(proxyAddr, &http.Transport{}).Get(upstream.URL + "/a/b?x=1;y=2")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Upstream") != "yes" || body != "path=/a/b query=x=1;y=2" {
		t.Errorf("got %d %q X-Upstream=%q, want 418 from upstream with the query as sent", resp.StatusCode, body, resp.Header.Get("X-Upstream"))
	}
	checkRecord(t, rec.next(t), "decision", "GET", "127.0.0.1", port, "allow", target)
}

func TestForwardRefusesTargetNotOnAllowlist(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a refused request reached the upstream")
	}))
	defer upstream.Close()
	_, port := hostPort(t, upstream.URL)
	proxyAddr, rec := startProxy(t, "127.0.0.1:1")

	resp, err := proxyClient(proxyAddr, &http.Transport{}).Get(upstream.URL + "/secret")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	want := fmt.Sprintf("bottle egress: GET to 127.0.0.1:%d refused: not on the allowlist (rule default-deny)\n", port)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Bottle-Egress") != "denied" || body != want {
		t.Errorf("got %d X-Bottle-Egress=%q %q, want 403 denied %q", resp.StatusCode, resp.Header.Get("X-Bottle-Egress"), body, want)
	}
	got := rec.next(t)
	checkRecord(t, got, "decision", "GET", "127.0.0.1", port, "deny", "default-deny")
	if got.Reason != "not on the allowlist" {
		t.Errorf("reason = %q", got.Reason)
	}
}

func TestForwardStripsHopByHopHeadersAndLogsNoSecrets(t *testing.T) {
	seen := make(chan http.Header, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-Upstream", "yes")
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	target, _ := hostPort(t, upstream.URL)
	proxyAddr, rec := startProxy(t, target)

	const secret = "c2VjcmV0LXRva2Vu"
	req := "POST http://" + target + "/h HTTP/1.1\r\n" +
		"Host: " + target + "\r\n" +
		"Proxy-Authorization: Basic " + secret + "\r\n" +
		"Authorization: Bearer " + secret + "\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Connection: keep-alive, X-Named-Hop\r\n" +
		"X-Named-Hop: drop me\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"TE: gzip\r\n" +
		"Trailer: X-Trailer\r\n" +
		"Upgrade: websocket\r\n" +
		"X-End-To-End: keep me\r\n" +
		"Content-Length: 16\r\n" +
		"\r\n" + secret
	_, _, resp := rawRequest(t, proxyAddr, req, "POST")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}

	h := <-seen
	for _, name := range []string{"Proxy-Authorization", "Proxy-Connection", "Connection", "X-Named-Hop", "Keep-Alive", "Te", "Trailer", "Upgrade", "Transfer-Encoding"} {
		if v, ok := h[name]; ok {
			t.Errorf("upstream saw hop-by-hop %s: %q", name, v)
		}
	}
	for _, name := range []string{"Authorization", "X-End-To-End"} {
		if h.Get(name) == "" {
			t.Errorf("upstream lacks end-to-end %s", name)
		}
	}
	for _, name := range []string{"Keep-Alive", "Proxy-Authenticate"} {
		if v, ok := resp.Header[name]; ok {
			t.Errorf("client saw hop-by-hop %s: %q", name, v)
		}
	}
	if resp.Header.Get("X-Upstream") != "yes" {
		t.Error("client lacks the upstream's end-to-end header")
	}

	line, err := json.Marshal(rec.next(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(line), secret) {
		t.Errorf("audit record leaks a secret: %s", line)
	}
}

func TestForwardUpstreamFailureIs502AndAudited(t *testing.T) {
	target, port := closedPort(t)
	proxyAddr, rec := startProxy(t, target)

	resp, err := proxyClient(proxyAddr, &http.Transport{}).Get("http://" + target + "/")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(body, "bottle egress: GET to "+target+" failed: ") || !strings.Contains(body, "refused") {
		t.Errorf("got %d %q, want 502 saying the connection was refused", resp.StatusCode, body)
	}
	checkRecord(t, rec.next(t), "decision", "GET", "127.0.0.1", port, "allow", target)
	got := rec.next(t)
	checkRecord(t, got, "close", "GET", "127.0.0.1", port, "allow", target)
	if !strings.Contains(got.Reason, "refused") {
		t.Errorf("close reason = %q, want the dial error", got.Reason)
	}
}

func TestForwardNeitherRequestsNorAcceptsProtocolSwitch(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Values("Upgrade"); v != nil {
			t.Errorf("upstream was asked to upgrade to %q", v)
		}
		// Switch anyway: the proxy must not turn this into a tunnel.
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	}))
	defer upstream.Close()
	target, port := hostPort(t, upstream.URL)
	proxyAddr, rec := startProxy(t, target)

	req := "GET http://" + target + "/ws HTTP/1.1\r\nHost: " + target + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	_, _, resp := rawRequest(t, proxyAddr, req, "GET")
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "switch protocol") {
		t.Errorf("got %d %q, want 502 refusing the switch", resp.StatusCode, body)
	}
	rec.next(t)
	checkRecord(t, rec.next(t), "close", "GET", "127.0.0.1", port, "allow", target)
}

func TestConnectTunnelsTLSAndAuditsByteCounts(t *testing.T) {
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over tls")
	}))
	defer upstream.Close()
	target, port := hostPort(t, upstream.URL)
	proxyAddr, rec := startProxy(t, target)

	client := proxyClient(proxyAddr, upstream.Client().Transport.(*http.Transport))
	resp, err := client.Get(upstream.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "over tls" {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	checkRecord(t, rec.next(t), "decision", "CONNECT", "127.0.0.1", port, "allow", target)

	client.CloseIdleConnections() // ends the tunnel
	got := rec.next(t)
	checkRecord(t, got, "close", "CONNECT", "127.0.0.1", port, "allow", target)
	if got.BytesUp <= 0 || got.BytesDown <= 0 {
		t.Errorf("close record counts up %d, down %d; want both > 0", got.BytesUp, got.BytesDown)
	}
}

func TestConnectRefusesTargetNotOnAllowlist(t *testing.T) {
	proxyAddr, rec := startProxy(t, "allowed.test")

	_, _, resp := rawRequest(t, proxyAddr, "CONNECT Blocked.Test.:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n", "CONNECT")
	body := readBody(t, resp)
	const want = "bottle egress: CONNECT to blocked.test:443 refused: not on the allowlist (rule default-deny)\n"
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Bottle-Egress") != "denied" || body != want {
		t.Errorf("got %d X-Bottle-Egress=%q %q, want 403 denied %q", resp.StatusCode, resp.Header.Get("X-Bottle-Egress"), body, want)
	}
	checkRecord(t, rec.next(t), "decision", "CONNECT", "blocked.test", 443, "deny", "default-deny")
}

func TestConnectDialFailureIs502AndAudited(t *testing.T) {
	target, port := closedPort(t)
	proxyAddr, rec := startProxy(t, target)

	_, _, resp := rawRequest(t, proxyAddr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n", "CONNECT")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(body, "bottle egress: CONNECT to "+target+" failed: ") {
		t.Errorf("got %d %q, want 502 with the reason", resp.StatusCode, body)
	}
	checkRecord(t, rec.next(t), "decision", "CONNECT", "127.0.0.1", port, "allow", target)
	got := rec.next(t)
	checkRecord(t, got, "close", "CONNECT", "127.0.0.1", port, "allow", target)
	if !strings.Contains(got.Reason, "refused") {
		t.Errorf("close reason = %q, want the dial error", got.Reason)
	}
}

func TestConnectRelaysEarlyBytesAndHalfClose(t *testing.T) {
	target := startEcho(t)
	proxyAddr, rec := startProxy(t, target)

	// The payload rides in the same write as the CONNECT head, as clients
	// that do not wait for the 200 send it.
	const payload = "hello through the tunnel"
	c, br, resp := rawRequest(t, proxyAddr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"+payload, "CONNECT")
	if resp.StatusCode != http.StatusOK || resp.Status != "200 Connection established" {
		t.Fatalf("got %q, want 200 Connection established", resp.Status)
	}
	// Finish sending; the echo must still come back, then EOF.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	if err != nil || string(got) != payload {
		t.Errorf("read %q, %v; want %q then EOF", got, err, payload)
	}

	rec.next(t)
	closed := rec.next(t)
	if closed.Event != "close" || closed.BytesUp != int64(len(payload)) || closed.BytesDown != int64(len(payload)) || closed.Reason != "" {
		t.Errorf("close record = %+v, want %d bytes each way and no reason", closed, len(payload))
	}
}

func TestNonProxyRequestIs400AndAuditedAsBadRequest(t *testing.T) {
	tests := []struct {
		name, req, method, why string
	}{
		{"origin-form GET", "GET / HTTP/1.1\r\nHost: proxy\r\n\r\n", "GET", "not a proxy request"},
		{"CONNECT without port", "CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", "CONNECT", "missing port"},
		{"CONNECT to port 0", "CONNECT example.com:0 HTTP/1.1\r\nHost: example.com:0\r\n\r\n", "CONNECT", "bad port"},
		{"absolute https URL", "GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "only http://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxyAddr, rec := startProxy(t, "example.com:*")
			_, _, resp := rawRequest(t, proxyAddr, tt.req, tt.method)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body, "bottle egress: this is a proxy; ") || !strings.Contains(body, tt.why) {
				t.Errorf("got %d %q, want 400 saying %q", resp.StatusCode, body, tt.why)
			}
			got := rec.next(t)
			if got.Event != "decision" || got.Decision != "deny" || got.Rule != "bad-request" || !strings.Contains(got.Reason, tt.why) {
				t.Errorf("record = %+v, want a bad-request denial", got)
			}
		})
	}
}
