package egress

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkForward is the proxy's own cost per plain-HTTP request (policy,
// DLP with the built-in patterns and one secret, SSRF guard, audit),
// without any network but loopback: compare with BenchmarkDirect.
func BenchmarkForward(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer upstream.Close()
	target, _ := hostPort(b, upstream.URL)
	scanner, err := NewScanner(DLPConfig{Secrets: []Secret{{Name: "S", Value: "a-secret-value-123"}}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Policy: mustPolicy(b, target), Audit: NewJSONAuditor(io.Discard), DLP: scanner}))
	defer srv.Close()
	client := proxyClient(srv.Listener.Addr().String(), &http.Transport{})
	get(b, client, upstream.URL+"/warm")
	b.ResetTimer()
	for range b.N {
		get(b, client, upstream.URL+"/path?q=1")
	}
}

// BenchmarkDirect is BenchmarkForward's request without the proxy.
func BenchmarkDirect(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer upstream.Close()
	client := &http.Client{Transport: &http.Transport{}}
	get(b, client, upstream.URL+"/warm")
	b.ResetTimer()
	for range b.N {
		get(b, client, upstream.URL+"/path?q=1")
	}
}

func get(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
