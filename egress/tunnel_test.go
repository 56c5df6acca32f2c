package egress

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startCountingUpstream serves plain HTTP on loopback and counts the
// requests that reach it.
func startCountingUpstream(t *testing.T) (port int, reached *atomic.Int32) {
	t.Helper()
	reached = &atomic.Int32{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		io.WriteString(w, "reached "+r.Host)
	}))
	t.Cleanup(upstream.Close)
	_, port = hostPort(t, upstream.URL)
	return port, reached
}

// tunnelRefused reads the tunnel until the proxy ends it and reports
// whether it ended without a byte from the upstream. The end may be a reset:
// the proxy closes the connection with the client's bytes unread.
func tunnelRefused(t *testing.T, c net.Conn, r io.Reader) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(r)
	c.Close()
	return len(b) == 0 && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestConnectTunnelCarriesOnlyWhatItsEntryAdmits: a tunnel to a port that
// no entry names must carry TLS to the tunnel's host; cleartext through it
// would reach another virtual host of the same address past the blocklist
// and DLP, which see only the CONNECT.
func TestConnectTunnelCarriesOnlyWhatItsEntryAdmits(t *testing.T) {
	port, reached := startCountingUpstream(t)
	ps := strconv.Itoa(port)
	res := &stubResolver{names: map[string][]string{"front.test": {"127.0.0.1"}, "named.test": {"127.0.0.1"}}}
	proxyAddr, rec := startProxyWith(t, Options{
		Policy:   mustPolicy(t, "web.test", "front.test:*", "named.test:"+ps),
		Trust:    mustTrust(t, "front.test", "named.test"),
		Resolver: res,
	})
	const smuggled = "POST /x HTTP/1.1\r\nHost: blocked.front.test\r\nX-Key: secret\r\nContent-Length: 0\r\n\r\n"

	t.Run("port 80 of an entry without a port is not a tunnel", func(t *testing.T) {
		_, _, resp := rawRequest(t, proxyAddr, "CONNECT web.test:80 HTTP/1.1\r\nHost: web.test:80\r\n\r\n", "CONNECT")
		if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "send plain HTTP as an http:// proxy request") {
			t.Errorf("got %d %q, want 403 pointing to plain HTTP", resp.StatusCode, body)
		}
		checkRecord(t, rec.next(t), "decision", "CONNECT", "web.test", 80, "deny", "default-deny")
	})
	t.Run("cleartext on a port admitted by *", func(t *testing.T) {
		c, br := openTunnel(t, proxyAddr, "front.test:"+ps)
		io.WriteString(c, smuggled)
		if !tunnelRefused(t, c, br) {
			t.Error("the upstream answered cleartext in a tunnel that must carry TLS")
		}
		checkRecord(t, rec.next(t), "decision", "CONNECT", "front.test", port, "allow", "front.test:*")
		got := rec.next(t)
		checkRecord(t, got, "decision", "CONNECT", "front.test", port, "deny", "tls-required")
		if strings.Contains(got.Reason, "secret") || strings.Contains(got.Reason, "blocked.front.test") {
			t.Errorf("reason %q quotes the tunnel's bytes", got.Reason)
		}
	})
	t.Run("cleartext on a port an entry names", func(t *testing.T) {
		c, br := openTunnel(t, proxyAddr, "named.test:"+ps)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: named.test\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, resp); body != "reached named.test" {
			t.Errorf("got %q", body)
		}
		c.Close()
		checkRecord(t, rec.next(t), "decision", "CONNECT", "named.test", port, "allow", "named.test:"+ps)
		rec.next(t) // close
	})
	if n := reached.Load(); n != 1 {
		t.Errorf("the upstream saw %d requests, want only the one through the named port", n)
	}
}

func TestConnectOnAnImplicitPortNeedsAClientHelloNamingTheHost(t *testing.T) {
	port := startTLSUpstream(t)
	res := &stubResolver{names: map[string][]string{"secure.test": {"127.0.0.1"}}}
	proxyAddr, rec := startProxyWith(t, Options{
		Policy: mustPolicy(t, "secure.test:*"), Trust: mustTrust(t, "secure.test"), Resolver: res,
	})
	target := "secure.test:" + port

	if out, err := tlsThroughProxy(t, proxyAddr, target, "secure.test"); err != nil || !strings.HasSuffix(out, "over tls") {
		t.Fatalf("control: got %q, %v", out, err)
	}
	rec.next(t)
	rec.next(t)

	// Go sends no server name for an IP address.
	if _, err := tlsThroughProxy(t, proxyAddr, target, "127.0.0.1"); err == nil {
		t.Fatal("a ClientHello naming no server went through a TLS-only tunnel to a name")
	}
	rec.next(t)
	got := rec.next(t)
	checkRecord(t, got, "decision", "CONNECT", "secure.test", atoi(port), "deny", "sni-mismatch")
	if !strings.Contains(got.Reason, "names no server") {
		t.Errorf("reason %q", got.Reason)
	}
}

// echConfigList is an ECHConfigList (draft-ietf-tls-esni) with one X25519
// config whose outer name is publicName.
func echConfigList(t testing.TB, publicName string) []byte {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.PublicKey().Bytes()
	be := binary.BigEndian
	var c []byte
	c = append(c, 1)               // config_id
	c = be.AppendUint16(c, 0x0020) // DHKEM(X25519, HKDF-SHA256)
	c = be.AppendUint16(c, uint16(len(pub)))
	c = append(c, pub...)
	c = be.AppendUint16(c, 4)      // cipher_suites, one:
	c = be.AppendUint16(c, 0x0001) // HKDF-SHA256
	c = be.AppendUint16(c, 0x0001) // AES-128-GCM
	c = append(c, 0)               // maximum_name_length
	c = append(c, byte(len(publicName)))
	c = append(c, publicName...)
	c = be.AppendUint16(c, 0) // no extensions
	cfg := be.AppendUint16(nil, 0xfe0d)
	cfg = be.AppendUint16(cfg, uint16(len(c)))
	cfg = append(cfg, c...)
	return append(be.AppendUint16(nil, uint16(len(cfg))), cfg...)
}

// clientHelloRecord is the first TLS record crypto/tls sends with cfg.
func clientHelloRecord(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		tls.Client(client, cfg).Handshake()
		client.Close()
	}()
	head := make([]byte, 5)
	if _, err := io.ReadFull(server, head); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(head[3:]))
	if _, err := io.ReadFull(server, body); err != nil {
		t.Fatal(err)
	}
	return append(head, body...)
}

// TestConnectRefusesEncryptedClientHello: with ECH the name the proxy reads
// is the outer one, and the upstream serves the encrypted inner one.
func TestConnectRefusesEncryptedClientHello(t *testing.T) {
	port := startTLSUpstream(t)
	res := &stubResolver{names: map[string][]string{"secure.test": {"127.0.0.1"}}}
	proxyAddr, rec := startProxyWith(t, Options{
		Policy: mustPolicy(t, "secure.test:"+port), Trust: mustTrust(t, "secure.test"), Resolver: res,
	})
	hello := clientHelloRecord(t, &tls.Config{
		ServerName:                     "evil.test",
		EncryptedClientHelloConfigList: echConfigList(t, "secure.test"),
		MinVersion:                     tls.VersionTLS13,
	})
	if h, err := readClientHello(strings.NewReader(string(hello[1:])), hello[:1]); err != nil || h.serverName != "secure.test" {
		t.Fatalf("control: the outer ClientHello reads as %+v, %v; want secure.test", h, err)
	}

	c, br := openTunnel(t, proxyAddr, "secure.test:"+port)
	c.Write(hello)
	if !tunnelRefused(t, c, br) {
		t.Error("the upstream answered a ClientHello with ECH")
	}
	rec.next(t)
	got := rec.next(t)
	checkRecord(t, got, "decision", "CONNECT", "secure.test", atoi(port), "deny", "tls-ech")
	if !strings.Contains(got.Reason, "Encrypted Client Hello") {
		t.Errorf("reason %q", got.Reason)
	}
}
