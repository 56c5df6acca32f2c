package egress

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// FuzzDLP: a configured secret, or a built-in key shape, amid any bytes and
// in any spelling the scanner promises (as is, hex in any case mix, base64
// in either alphabet at any offset and padded or not, percent-encoded once
// or twice) is always found; and when it sits in any part of a request the
// proxy sees, the refusal and its audit record never show it, in any case.
func FuzzDLP(f *testing.F) {
	f.Add("/x?q=", "correct-horse-battery-staple/42+x", "&y=1", uint8(0), uint64(0))
	f.Add("", "s3cr3t-value-of-the-host", "", uint8(3), uint64(0xaaaa))
	f.Add("\xff\xfe%4", "AbCdEfGh12345678", "%", uint8(5), uint64(1))
	f.Add("x_", "a1B2a1B2a1B2a1B2a1B2a1B2a1B2a1B2a1B2", "_7", uint8(8), uint64(2))
	f.Fuzz(func(t *testing.T, prefix, secret, suffix string, mode uint8, bits uint64) {
		if len(secret) < minSecretLen || !strings.ContainsAny(secret, "0123456789") {
			// A digit keeps the secret out of the proxy's own words
			// ("redacted", "header name"), which the refusal must show.
			return
		}
		s, err := NewScanner(DLPConfig{Secrets: []Secret{{Name: "FUZZ", Value: secret}}})
		if err != nil {
			t.Fatal(err)
		}
		// Scanning anything never panics.
		s.Scan("URL", prefix+secret+suffix)
		s.scanFold("header name", prefix+suffix)

		for _, text := range spellings(prefix, secret, suffix, bits) {
			if f := s.Scan("URL", text); f == nil {
				t.Fatalf("secret not found in %q", text)
			}
		}
		key := keyShape(secret, mode)
		if f := s.Scan("URL", prefix+key+suffix); f == nil {
			t.Fatalf("key shape %q not found amid %q and %q", key, prefix, suffix)
		}
		checkRefusalHidesSecret(t, s, requestWith(prefix+secret+suffix, mode, bits), secret)
	})
}

// spellings embeds secret amid prefix and suffix in each encoding the
// scanner promises to see through. bits choose the case of each hex digit.
func spellings(prefix, secret, suffix string, bits uint64) []string {
	h := []byte(hex.EncodeToString([]byte(secret)))
	for i := range h {
		if bits>>(i%64)&1 == 1 {
			h[i] = strings.ToUpper(string(h[i]))[0]
		}
	}
	out := []string{
		prefix + secret + suffix,
		prefix + string(h) + suffix,
		prefix + url.QueryEscape(secret) + suffix,
		prefix + url.PathEscape(secret) + suffix,
		// Decoding runs left to right: a separator keeps a stray "%4" at
		// the end of prefix from taking the escape's first character.
		prefix + "/" + url.QueryEscape(url.QueryEscape(secret)) + suffix,
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		// prefix's bytes before the secret choose its offset in the
		// base64 groups.
		out = append(out, prefix+enc.EncodeToString([]byte(prefix+secret+suffix))+suffix)
	}
	return out
}

// keyShape makes a built-in key shape out of v's bytes.
func keyShape(v string, mode uint8) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	body := make([]byte, 40)
	for i := range body {
		body[i] = alnum[int(v[i%len(v)])%len(alnum)]
	}
	switch mode % 4 {
	case 0:
		return "gh" + "p_" + string(body)
	case 1:
		return "AK" + "IA" + strings.ToUpper(string(body[:16]))
	case 2:
		return "sk-" + "ant-api03-" + string(body)
	default:
		return "xo" + "xb-" + string(body)
	}
}

// requestWith puts text in the part of a request that mode chooses.
func requestWith(text string, mode uint8, bits uint64) *http.Request {
	r := &http.Request{
		Method:     "GET",
		URL:        &url.URL{Scheme: "http", Host: "app.test", Path: "/"},
		Host:       "app.test",
		RequestURI: "http://app.test/",
		Header:     http.Header{},
	}
	switch mode % 6 {
	case 0:
		r.Method = text
	case 1:
		r.Host = text
		r.URL.Host = text
	case 2:
		r.RequestURI = "http://app.test/" + text
		r.URL.Path = "/" + text
	case 3:
		// As net/http hands it over: in canonical case.
		r.Header[textproto.CanonicalMIMEHeaderKey("X-"+text)] = []string{"1"}
	case 4:
		r.Header.Set("X-Fuzz", text)
	default:
		encs := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
		r.Header.Set("Authorization", "Basic "+encs[bits%4].EncodeToString([]byte("u:"+text)))
	}
	return r
}

// checkRefusalHidesSecret sends r through a proxy with s: it must be
// refused, and neither the 403 nor the audit record may show secret.
func checkRefusalHidesSecret(t *testing.T, s *Scanner, r *http.Request, secret string) {
	t.Helper()
	policy, err := NewPolicy([]string{"app.test"})
	if err != nil {
		t.Fatal(err)
	}
	audit := &recordList{}
	p := New(Options{Policy: policy, Audit: audit, DLP: s, Resolver: noLookups{}})
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || len(audit.recs) != 1 {
		t.Fatalf("request with the secret in it: %d, %d records, want one refusal", w.Code, len(audit.recs))
	}
	rec := audit.recs[0]
	leak := asciiLower(secret)
	for _, out := range []string{w.Body.String(), rec.Method, rec.Host, rec.Rule, rec.Reason} {
		if strings.Contains(asciiLower(out), leak) {
			t.Fatalf("the refusal shows the secret: %q (record %+v)", out, rec)
		}
	}
}

// noLookups keeps the fuzzer off the network: a request that DLP let
// through fails at once instead of resolving.
type noLookups struct{}

func (noLookups) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, errors.New("the fuzz test resolves nothing")
}

type recordList struct {
	mu   sync.Mutex
	recs []Record
}

func (l *recordList) Record(r Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
}
