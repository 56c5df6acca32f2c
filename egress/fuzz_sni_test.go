package egress

import (
	"bytes"
	"crypto/tls"
	"errors"
	"testing"
)

// FuzzClientHello feeds the tunnel check arbitrary first bytes. Whatever it
// lets through is exactly a prefix of what the client sent; in a tunnel that
// must carry TLS, that prefix reads again as a ClientHello naming the
// tunnel's host without ECH; and anything it refuses is refused by a rule
// of its own.
func FuzzClientHello(f *testing.F) {
	const host = "secure.test"
	// Small hellos (an X25519 key share only, not the post-quantum one of
	// 1.2 kB) keep the fuzzer's minimizing of what it finds short.
	small := func(serverName string) *tls.Config {
		return &tls.Config{ServerName: serverName, CurvePreferences: []tls.CurveID{tls.X25519}}
	}
	hello := clientHelloRecord(f, small(host))
	echConfig := small("evil.test")
	echConfig.EncryptedClientHelloConfigList = echConfigList(f, host)
	echConfig.MinVersion = tls.VersionTLS13
	ech := clientHelloRecord(f, echConfig)
	tls12 := small(host)
	tls12.MaxVersion = tls.VersionTLS12
	seeds := [][]byte{
		hello,
		ech,
		clientHelloRecord(f, small("evil.test")),
		clientHelloRecord(f, small("127.0.0.1")), // no server name
		clientHelloRecord(f, tls12),
		hello[:5],
		hello[:len(hello)/2],
		ech[:len(ech)-1],
		// The hello split over two records, as a client may frame it.
		append(append([]byte{0x16, 3, 1, 0, 10}, hello[5:15]...), append([]byte{0x16, 3, 1, byte((len(hello) - 15) >> 8), byte(len(hello) - 15)}, hello[15:]...)...),
		[]byte("SSH-2.0-OpenSSH_9.2\r\n"),
		[]byte("GET / HTTP/1.1\r\nHost: other.test\r\n\r\n"),
		{0x16},
		{},
	}
	for _, s := range seeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	rules := map[string]bool{ruleSNIMismatch: true, ruleTLSHello: true, ruleTLSRequired: true, ruleECH: true}
	f.Fuzz(func(t *testing.T, data []byte, tlsOnly bool) {
		p := &Proxy{}
		got, err := p.checkTLS(&helloConn{}, bytes.NewReader(data), host, 443, tlsOnly)
		if err != nil {
			var refused *tlsRefusal
			if !errors.As(err, &refused) || !rules[refused.rule] {
				t.Fatalf("refused with %v, not a rule of the tunnel check", err)
			}
			return
		}
		if !bytes.HasPrefix(data, got) {
			t.Fatalf("passed on %q, which is not what the client sent (%q)", got, data)
		}
		if !tlsOnly || len(data) == 0 {
			return
		}
		h, err := readClientHello(bytes.NewReader(got[1:]), got[:1])
		if err != nil || h.ech || normalizeHost(h.serverName) != host {
			t.Fatalf("let %q through a TLS-only tunnel to %s: it reads as %+v, %v", got, host, h, err)
		}
	})
}
