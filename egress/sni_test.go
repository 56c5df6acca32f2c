package egress

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func startTLSUpstream(t *testing.T) (port string) {
	t.Helper()
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over tls")
	}))
	upstream.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point here
	upstream.StartTLS()
	t.Cleanup(upstream.Close)
	_, p := hostPort(t, upstream.URL)
	return strconv.Itoa(p)
}

func TestConnectRequiresTheClientHelloToNameTheTunnelsHost(t *testing.T) {
	port := startTLSUpstream(t)
	res := &stubResolver{names: map[string][]string{"secure.test": {"127.0.0.1"}}}
	proxyAddr, rec := startProxyWith(t, Options{
		Policy: mustPolicy(t, "secure.test:"+port), Trust: mustTrust(t, "secure.test"), Resolver: res,
	})
	target := "secure.test:" + port

	t.Run("matching name", func(t *testing.T) {
		out, err := tlsThroughProxy(t, proxyAddr, target, "secure.test")
		if err != nil || !strings.HasSuffix(out, "over tls") {
			t.Fatalf("got %q, %v", out, err)
		}
		checkRecord(t, rec.next(t), "decision", "CONNECT", "secure.test", atoi(port), "allow", target)
		if got := rec.next(t); got.Event != "close" || got.BytesUp == 0 {
			t.Errorf("close record = %+v", got)
		}
	})
	t.Run("matching name in another case with a trailing dot", func(t *testing.T) {
		if out, err := tlsThroughProxy(t, proxyAddr, target, "SECURE.test."); err != nil || !strings.HasSuffix(out, "over tls") {
			t.Fatalf("got %q, %v", out, err)
		}
		rec.next(t)
		rec.next(t)
	})
	t.Run("other name", func(t *testing.T) {
		if out, err := tlsThroughProxy(t, proxyAddr, target, "evil.test"); err == nil {
			t.Fatalf("TLS to evil.test through a tunnel to secure.test worked: %q", out)
		}
		checkRecord(t, rec.next(t), "decision", "CONNECT", "secure.test", atoi(port), "allow", target)
		got := rec.next(t)
		checkRecord(t, got, "decision", "CONNECT", "secure.test", atoi(port), "deny", "sni-mismatch")
		if !strings.Contains(got.Reason, "names evil.test, not secure.test") {
			t.Errorf("reason %q", got.Reason)
		}
	})
	t.Run("no name", func(t *testing.T) {
		// Go sends no server name for an IP address: a client that names
		// nothing gets the host's default, which is still the host.
		if out, err := tlsThroughProxy(t, proxyAddr, target, "127.0.0.1"); err != nil || !strings.HasSuffix(out, "over tls") {
			t.Fatalf("got %q, %v", out, err)
		}
		rec.next(t)
		rec.next(t)
	})
	t.Run("unreadable hello", func(t *testing.T) {
		c, br := openTunnel(t, proxyAddr, target)
		io.WriteString(c, "\x16\x03\x01\x00\x05hello")
		if _, err := br.ReadByte(); err == nil {
			t.Error("the tunnel answered a broken ClientHello")
		}
		rec.next(t)
		got := rec.next(t)
		if got.Decision != "deny" || got.Rule != "tls-unreadable" {
			t.Errorf("record = %+v, want a tls-unreadable denial", got)
		}
	})
}

func TestConnectToAnIPLiteralRefusesANamedClientHello(t *testing.T) {
	port := startTLSUpstream(t)
	target := net.JoinHostPort("127.0.0.1", port)
	proxyAddr, rec := startProxyWith(t, Options{Policy: mustPolicy(t, target)})
	if _, err := tlsThroughProxy(t, proxyAddr, target, "example.com"); err == nil {
		t.Fatal("a ClientHello naming example.com went through a tunnel to an IP address")
	}
	rec.next(t)
	if got := rec.next(t); got.Rule != "sni-mismatch" {
		t.Errorf("record = %+v", got)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
