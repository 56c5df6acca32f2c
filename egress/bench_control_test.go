package egress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// askSignal is an Auditor that hands the ids of questions to a benchmark.
type askSignal chan uint64

func (a askSignal) Record(rec Record) {
	if rec.Event == EventAsk {
		a <- rec.ID
	}
}

// connectFirstByte sends CONNECT target, and once the proxy answers 200
// sends one byte, which must reach the upstream behind first. answer runs
// between sending the CONNECT and reading the proxy's answer.
func connectFirstByte(b *testing.B, proxyAddr, target string, first <-chan byte, answer func()) {
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); err != nil {
		b.Fatal(err)
	}
	answer()
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	io.WriteString(c, "x")
	select {
	case <-first:
	case <-time.After(5 * time.Second):
		b.Fatal("no byte reached the upstream")
	}
}

// BenchmarkApproval times a question's two legs on loopback: from the
// client's CONNECT to the question on the audit stream, and from the answer
// to the client's first byte at the upstream. The baseline is an
// allowlisted CONNECT's time to its first byte, measured alongside.
func BenchmarkApproval(b *testing.B) {
	port, first := firstByteUpstream(b)
	allowed := "127.0.0.1:" + strconv.Itoa(port)
	asked := "localhost:" + strconv.Itoa(port)
	asks := make(askSignal, 1)
	p := New(Options{
		Policy:     mustPolicy(b, allowed),
		Audit:      asks,
		Trust:      mustTrust(b, "localhost"),
		Resolver:   &stubResolver{names: map[string][]string{"localhost": {"127.0.0.1"}}},
		AskTimeout: time.Minute,
	})
	srv := httptest.NewServer(p)
	defer srv.Close()
	proxyAddr := srv.Listener.Addr().String()

	var base, toAsk, toByte time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		connectFirstByte(b, proxyAddr, allowed, first, func() {})
		base += time.Since(start)

		start = time.Now()
		var answered time.Time
		connectFirstByte(b, proxyAddr, asked, first, func() {
			id := <-asks
			answered = time.Now()
			toAsk += answered.Sub(start)
			p.Answer(id, true)
		})
		toByte += time.Since(answered)

		p.ask.mu.Lock()
		p.ask.asked = nil // the rate limit is not what is measured
		p.ask.mu.Unlock()
	}
	n := float64(b.N)
	b.ReportMetric(float64(base.Microseconds())/n, "baseline-µs")
	b.ReportMetric(float64(toAsk.Microseconds())/n, "connect-to-ask-µs")
	b.ReportMetric(float64(toByte.Microseconds())/n, "answer-to-byte-µs")
	b.ReportMetric(float64(toAsk)/float64(base), "ask/baseline")
	b.ReportMetric(float64(toByte)/float64(base), "answer/baseline")
}

// BenchmarkPolicyChangeUnder100Tunnels applies control lines that swap the
// allowlist while 100 tunnels are open, then checks that every tunnel
// still carries bytes both ways. The baseline is an allowlisted CONNECT's
// round trip, measured alongside.
func BenchmarkPolicyChangeUnder100Tunnels(b *testing.B) {
	const tunnels = 100
	echo := startEcho(b)
	p := New(Options{Policy: mustPolicy(b, echo), Audit: NewJSONAuditor(io.Discard), Trust: mustTrust(b, "127.0.0.1")})
	srv := httptest.NewServer(p)
	defer srv.Close()
	type open struct {
		c  net.Conn
		br *bufio.Reader
	}
	var open100 []open
	for range tunnels {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "CONNECT "+echo+" HTTP/1.1\r\n\r\n")
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("CONNECT: %v %v", resp, err)
		}
		open100 = append(open100, open{c, br})
	}
	lines := [2][]byte{
		[]byte(`{"op":"policy","allow":["a.test","*.b.test:*"],"block":["c.test"],"client":"bench"}`),
		[]byte(fmt.Sprintf(`{"op":"policy","allow":[%q,"a.test"],"client":"bench"}`, echo)),
	}

	// The baseline: an allowlisted CONNECT's round trip through the proxy to
	// the echo and back.
	const samples = 50
	start := time.Now()
	for range samples {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		io.WriteString(c, "CONNECT "+echo+" HTTP/1.1\r\n\r\n")
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("CONNECT: %v %v", resp, err)
		}
		io.WriteString(c, "x")
		if _, err := br.ReadByte(); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	connect := time.Since(start) / samples

	b.ResetTimer()
	for i := range b.N {
		if err := p.apply(lines[i%2]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	dropped := 0
	for _, t := range open100 {
		t.c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4)
		if _, err := io.WriteString(t.c, "ping"); err != nil {
			dropped++
		} else if _, err := io.ReadFull(t.br, buf); err != nil || string(buf) != "ping" {
			dropped++
		}
	}
	if dropped > 0 {
		b.Fatalf("%d of %d tunnels dropped by policy changes", dropped, tunnels)
	}
	b.ReportMetric(0, "dropped")
	b.ReportMetric(float64(connect.Microseconds()), "baseline-connect-µs")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(connect.Nanoseconds()), "change/connect")
}
