package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Rules of refusals made inside a CONNECT tunnel.
const (
	ruleSNIMismatch = "sni-mismatch"
	ruleTLSHello    = "tls-unreadable"
)

// helloTimeout bounds reading a ClientHello once its first byte has come.
const helloTimeout = 10 * time.Second

// tlsRefusal ends a tunnel whose TLS ClientHello the proxy refused.
type tlsRefusal struct {
	rule, reason string
}

func (e *tlsRefusal) Error() string { return e.reason }

// recordTypeHandshake opens every TLS ClientHello.
const recordTypeHandshake = 0x16

// checkTLS reads the client's first bytes in a tunnel to host. When they
// open a TLS handshake, the ClientHello must name host as its server (SNI),
// or name none; and it must not carry a secret. Anything else (SSH, plain
// TCP) passes. It returns the bytes it consumed, to be sent on unchanged.
func (p *Proxy) checkTLS(client net.Conn, r io.Reader, host string) ([]byte, error) {
	first := make([]byte, 1)
	if _, err := io.ReadFull(r, first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // the client sent nothing; relay sees the EOF
		}
		return nil, err
	}
	if first[0] != recordTypeHandshake {
		return first, nil
	}
	var seen bytes.Buffer
	seen.Write(first)
	client.SetReadDeadline(time.Now().Add(helloTimeout))
	defer client.SetReadDeadline(time.Time{})
	name, err := readServerName(io.TeeReader(r, &seen), first)
	if err != nil {
		return nil, &tlsRefusal{rule: ruleTLSHello, reason: "the tunnel to " + host + " opened with a TLS ClientHello the proxy cannot read: " + err.Error()}
	}
	if name == "" {
		return seen.Bytes(), nil
	}
	if f := p.dlp.Scan("TLS server name", name); f != nil {
		return nil, &tlsRefusal{rule: f.Rule, reason: "the TLS server name carries a secret"}
	}
	if normalizeHost(name) != host {
		return nil, &tlsRefusal{rule: ruleSNIMismatch, reason: fmt.Sprintf("the TLS ClientHello names %s, not %s, the host the tunnel was opened to", normalizeHost(name), host)}
	}
	return seen.Bytes(), nil
}

// errHelloRead stops crypto/tls once it has parsed the ClientHello.
var errHelloRead = errors.New("client hello read")

// readServerName parses a TLS ClientHello from first and r with crypto/tls
// itself, which handles every framing a client may use, and returns its
// server name. Nothing is written back to the client.
func readServerName(r io.Reader, first []byte) (string, error) {
	var name string
	var got bool
	conn := &helloConn{r: io.MultiReader(bytes.NewReader(first), r)}
	srv := tls.Server(conn, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name, got = h.ServerName, true
			return nil, errHelloRead
		},
	})
	err := srv.HandshakeContext(context.Background())
	if got {
		return name, nil
	}
	if err == nil {
		err = errors.New("no ClientHello")
	}
	return "", err
}

// helloConn is a net.Conn that reads from r and swallows writes (the alert
// crypto/tls sends when the handshake stops).
type helloConn struct {
	r io.Reader
}

func (c *helloConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *helloConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *helloConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }
