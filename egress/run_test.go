package egress

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/lockedbuf"
)

// syncBuffer collects what Run writes from its goroutines.
type syncBuffer struct{ lockedbuf.Buffer }

func (b *syncBuffer) records(t *testing.T) []Record {
	t.Helper()
	var recs []Record
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// logLines hands each write to logOut to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // the test reads only the first line
	}
	return len(p), nil
}

// startRun runs the proxy until the test cancels it, and returns the address
// it listens on, a cancel func, the channel Run's result arrives on, and the
// audit output.
func startRun(t *testing.T, cfg Config, lim limits) (addr string, stop context.CancelFunc, done <-chan error, audit *syncBuffer) {
	t.Helper()
	return startRunControlled(t, cfg, nil, lim)
}

// startRunControlled is startRun with control as the control channel.
func startRunControlled(t *testing.T, cfg Config, control io.Reader, lim limits) (addr string, stop context.CancelFunc, done <-chan error, audit *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	audit = &syncBuffer{}
	logs := make(logLines, 10)
	result := make(chan error, 1)
	go func() {
		result <- run(ctx, cfg, control, audit, logs, lim)
		close(result) // lets the cleanup below pass once the test has taken the result
	}()
	t.Cleanup(func() {
		cancel()
		<-result
	})
	select {
	case line := <-logs:
		addr, ok := strings.CutPrefix(line, "egress proxy listening on ")
		if !ok || !strings.HasSuffix(addr, "\n") {
			t.Fatalf("first log line %q, want %q", line, "egress proxy listening on ADDR\n")
		}
		return strings.TrimSuffix(addr, "\n"), cancel, result, audit
	case err := <-result:
		t.Fatalf("run ended before listening: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no listening line")
	}
	return "", nil, nil, nil
}

func waitRun(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was done")
	}
}

// openTunnel sends CONNECT target through the proxy at proxyAddr.
func openTunnel(t *testing.T, proxyAddr, target string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, br, resp := rawRequest(t, proxyAddr, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n", "CONNECT")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %s", target, resp.Status)
	}
	return c, br
}

func TestRunPrintsListeningLineAndServesUntilContextIsDone(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	target, port := hostPort(t, upstream.URL)
	addr, stop, done, audit := startRun(t, Config{Listen: "127.0.0.1:0", Session: "s-run", Allow: []string{target}}, defaultLimits)

	client := proxyClient(addr, &http.Transport{})
	resp, err := client.Get(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); body != "ok" {
		t.Errorf("body %q", body)
	}
	client.CloseIdleConnections()
	stop()
	waitRun(t, done)

	recs := audit.records(t)
	if len(recs) != 1 || recs[0].Session != "s-run" || recs[0].Decision != "allow" || recs[0].Port != port {
		t.Errorf("audit = %+v, want one allow decision in session s-run", recs)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still listening after Run returned")
	}
}

func TestRunRefusesBadAllowEntryWithoutListening(t *testing.T) {
	err := Run(context.Background(), Config{Listen: "127.0.0.1:0", Allow: []string{"https://example.com"}}, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"https://example.com"`) {
		t.Errorf("Run = %v, want an error naming the entry", err)
	}
}

func TestTunnelInUseOutlivesServerTimeouts(t *testing.T) {
	target := startEcho(t)
	short := limits{dial: 100 * time.Millisecond, readHeader: 100 * time.Millisecond, idle: 100 * time.Millisecond, grace: time.Second}
	addr, stop, done, audit := startRun(t, Config{Listen: "127.0.0.1:0", Allow: []string{target}}, short)

	c, br := openTunnel(t, addr, target)
	// Quiet spells several times longer than every timeout of the proxy:
	// an agent's connection to its API idles like this between turns.
	for i := range 5 {
		time.Sleep(300 * time.Millisecond)
		msg := []byte{byte('a' + i)}
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got := make([]byte, 1)
		if _, err := io.ReadFull(br, got); err != nil || got[0] != msg[0] {
			t.Fatalf("echo %d: %q, %v", i, got, err)
		}
	}
	c.Close()
	stop()
	waitRun(t, done)

	recs := audit.records(t)
	if len(recs) != 2 || recs[1].Event != "close" || recs[1].BytesUp != 5 || recs[1].BytesDown != 5 {
		t.Errorf("audit = %+v, want a decision and a close with 5 bytes each way", recs)
	}
}

func TestRunClosesTunnelsStillOpenAfterGrace(t *testing.T) {
	target := startEcho(t)
	lim := defaultLimits
	lim.grace = 100 * time.Millisecond
	addr, stop, done, audit := startRun(t, Config{Listen: "127.0.0.1:0", Allow: []string{target}}, lim)

	c, br := openTunnel(t, addr, target)
	if _, err := io.WriteString(c, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); err != nil {
		t.Fatal(err)
	}
	stop()
	waitRun(t, done)

	if _, err := br.ReadByte(); err == nil {
		t.Error("tunnel still open after Run returned")
	}
	recs := audit.records(t)
	if len(recs) != 2 || recs[1].Event != "close" || recs[1].Reason != "closed at proxy shutdown" || recs[1].BytesUp != 1 {
		t.Errorf("audit = %+v, want a close record saying the proxy closed it", recs)
	}
}

func TestRunRefusesBadSecurityConfigWithoutListening(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"block entry", Config{Block: []string{"a/b"}}, `block entry "a/b"`},
		{"trusted entry", Config{Trusted: []string{"git.test:22"}}, `trusted entry "git.test:22"`},
		{"DLP pattern", Config{DLP: DLPConfig{Patterns: []Pattern{{Name: "p", Regex: "("}}}}, `DLP pattern "p"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Listen = "127.0.0.1:0"
			logs := make(logLines, 1)
			err := Run(context.Background(), tt.cfg, nil, io.Discard, logs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want %q", err, tt.want)
			}
			if len(logs) > 0 {
				t.Errorf("it listened: %q", <-logs)
			}
		})
	}
}

// TestRunAuditsEveryRefusalIncludingThoseBeforeTheHandler: requests that
// net/http refuses before the proxy's handler runs, and "OPTIONS *" which it
// would answer itself, each leave a bad-request line that quotes nothing of
// the request.
func TestRunAuditsEveryRefusalIncludingThoseBeforeTheHandler(t *testing.T) {
	const marker = "sk-ant-api03-MARKER"
	tests := []struct {
		name, req string
		status    int
		reason    string
	}{
		{"two Host headers", "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nHost: " + marker + "\r\n\r\n", 400, "400 Bad Request"},
		{"control character in a header", "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nX-A: " + marker + "\x01\r\n\r\n", 400, "400 Bad Request"},
		{"control character in the Host header", "GET http://a.test/ HTTP/1.1\r\nHost: a\x7f" + marker + "\r\n\r\n", 400, "400 Bad Request"},
		{"bad Content-Length", "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: " + marker + "\r\n\r\n", 400, "400 Bad Request"},
		{"two Content-Lengths", "POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "400 Bad Request"},
		{"header too large", "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nX-A: " + marker + strings.Repeat("a", 1<<20+8192) + "\r\n\r\n", 431, "431 Request Header Fields Too Large"},
		{"HTTP version", "GET http://a.test/" + marker + " HTTP/3.0\r\nHost: a.test\r\n\r\n", 505, "505 HTTP Version Not Supported: unsupported protocol version"},
		{"malformed request line", "GET\x01" + marker + "\r\nHost: a.test\r\n\r\n", 400, "400 Bad Request"},
		{"unknown Expect", "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nExpect: " + marker + "\r\n\r\n", 417, "417 Expectation Failed"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n", 400, "not a proxy request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, stop, done, audit := startRun(t, Config{Listen: "127.0.0.1:0", Session: "s-bad"}, defaultLimits)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The server may answer and hang up before it has read it all.
			go io.WriteString(c, tt.req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			c.Close()
			stop()
			waitRun(t, done)

			recs := audit.records(t)
			if len(recs) != 1 || recs[0].Decision != "deny" || recs[0].Rule != "bad-request" || recs[0].Session != "s-bad" ||
				!strings.Contains(recs[0].Reason, tt.reason) {
				t.Errorf("audit = %+v, want one bad-request denial saying %q", recs, tt.reason)
			}
			if strings.Contains(audit.String(), "MARKER") {
				t.Errorf("the audit quotes the request: %s", audit.String())
			}
		})
	}
}

func TestRunAuditsARefusalAfterAGoodRequestOnTheSameConnection(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	target, _ := hostPort(t, upstream.URL)
	addr, stop, done, audit := startRun(t, Config{Listen: "127.0.0.1:0", Allow: []string{target}}, defaultLimits)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET http://"+target+"/ HTTP/1.1\r\nHost: "+target+"\r\n\r\n"+
		"GET http://"+target+"/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []int{200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("status %d, want %d", resp.StatusCode, want)
		}
	}
	c.Close()
	stop()
	waitRun(t, done)
	recs := audit.records(t)
	if len(recs) != 2 || recs[0].Decision != "allow" || recs[1].Rule != "bad-request" {
		t.Errorf("audit = %+v, want the allow and a bad-request denial", recs)
	}
}
