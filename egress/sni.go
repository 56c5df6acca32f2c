package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"
)

// Rules of refusals made inside a CONNECT tunnel.
const (
	ruleSNIMismatch = "sni-mismatch"
	ruleTLSHello    = "tls-unreadable"
	ruleTLSRequired = "tls-required"
	ruleECH         = "tls-ech"
)

// helloTimeout bounds reading a ClientHello once its first byte has come.
const helloTimeout = 10 * time.Second

// tlsRefusal ends a tunnel whose first bytes the proxy refused.
type tlsRefusal struct {
	rule, reason string
}

func (e *tlsRefusal) Error() string { return e.reason }

// recordTypeHandshake opens every TLS ClientHello.
const recordTypeHandshake = 0x16

// extensionECH is encrypted_client_hello: the ClientHello the proxy reads is
// then an outer one, and the name the upstream serves is encrypted.
const extensionECH = 0xfe0d

// encryptsServerName reports whether a ClientHello extension hides the
// server's name: ECH, its drafts' codepoints (0xfe08 to 0xfe0c), which a
// server may still speak, and the older encrypted_server_name (ESNI).
func encryptsServerName(ext uint16) bool {
	return ext >= 0xfe08 && ext <= extensionECH || ext == 0xffce
}

// checkTLS reads the client's first bytes in a tunnel to host:port. When
// they open a TLS handshake, the ClientHello must not carry ECH (whose
// server name the proxy cannot read), must name host as its server (SNI) or
// none, and must not carry a secret. When tlsOnly (no allowlist entry named
// the port), they must be such a ClientHello, and it must name host unless
// host is an IP address. Otherwise anything else (SSH, plain TCP) passes. It
// returns the bytes it consumed, to be sent on unchanged.
func (p *Proxy) checkTLS(client net.Conn, r io.Reader, host string, port int, tlsOnly bool) ([]byte, error) {
	first := make([]byte, 1)
	if _, err := io.ReadFull(r, first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // the client sent nothing; relay sees the EOF
		}
		return nil, err
	}
	target := net.JoinHostPort(host, strconv.Itoa(port))
	if first[0] != recordTypeHandshake {
		if tlsOnly {
			return nil, &tlsRefusal{rule: ruleTLSRequired, reason: "the tunnel to " + target +
				" did not open with a TLS ClientHello; a tunnel carries anything else only to a port an allowlist entry names"}
		}
		return first, nil
	}
	var seen bytes.Buffer
	seen.Write(first)
	client.SetReadDeadline(time.Now().Add(helloTimeout))
	defer client.SetReadDeadline(time.Time{})
	hello, err := readClientHello(io.TeeReader(r, &seen), first)
	if err != nil {
		return nil, &tlsRefusal{rule: ruleTLSHello, reason: "the tunnel to " + target + " opened with a TLS ClientHello the proxy cannot read: " + err.Error()}
	}
	if hello.ech {
		return nil, &tlsRefusal{rule: ruleECH, reason: "the TLS ClientHello in the tunnel to " + target +
			" offers Encrypted Client Hello (or its GREASE), which hides the server it asks for"}
	}
	if hello.serverName == "" {
		if tlsOnly && !isIP(host) {
			return nil, &tlsRefusal{rule: ruleSNIMismatch, reason: "the TLS ClientHello names no server, not " + host + ", the host the tunnel was opened to"}
		}
		return seen.Bytes(), nil
	}
	// A server name keeps no case: the name is matched in any, as a host is.
	if f := p.dlp.scanFold("TLS server name", hello.serverName); f != nil {
		return nil, &tlsRefusal{rule: f.Rule, reason: "the TLS server name carries a secret"}
	}
	if name := normalizeHost(hello.serverName); name != host {
		return nil, &tlsRefusal{rule: ruleSNIMismatch, reason: fmt.Sprintf("the TLS ClientHello names %s, not %s, the host the tunnel was opened to", name, host)}
	}
	return seen.Bytes(), nil
}

// errHelloRead stops crypto/tls once it has parsed the ClientHello.
var errHelloRead = errors.New("client hello read")

// clientHello is what the proxy reads of one.
type clientHello struct {
	serverName string
	ech        bool // it carries encrypted_client_hello or another encrypted name
}

// readClientHello parses a TLS ClientHello from first and r with crypto/tls
// itself, which handles every framing a client may use. Nothing is written
// back to the client.
func readClientHello(r io.Reader, first []byte) (clientHello, error) {
	var hello clientHello
	var got bool
	stop := func(h *tls.ClientHelloInfo) {
		hello = clientHello{serverName: h.ServerName, ech: slices.ContainsFunc(h.Extensions, encryptsServerName)}
		got = true
	}
	conn := &helloConn{r: io.MultiReader(bytes.NewReader(first), r)}
	srv := tls.Server(conn, &tls.Config{
		// Asked first, and only when the ClientHello has an ECH extension,
		// before crypto/tls parses it: a malformed one is ECH all the same.
		GetEncryptedClientHelloKeys: func(h *tls.ClientHelloInfo) ([]tls.EncryptedClientHelloKey, error) {
			stop(h)
			hello.ech = true
			return nil, errHelloRead
		},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			stop(h)
			return nil, errHelloRead
		},
	})
	err := srv.HandshakeContext(context.Background())
	if got {
		return hello, nil
	}
	if err == nil {
		err = errors.New("no ClientHello")
	}
	return clientHello{}, err
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
