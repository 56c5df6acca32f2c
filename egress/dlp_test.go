package egress

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// Test secrets are put together at run time, so that no file in the
// repository holds a string that looks like a live credential to a secret
// scanner.
func rep(s string, n int) string { return strings.Repeat(s, n) }

var (
	fakeAnthropic  = "sk-" + "ant-api03-" + rep("Ab3_", 20)
	fakeAnthropicO = "sk-" + "ant-oat01-" + rep("xY9-", 10)
	fakeOpenAIProj = "sk-" + "proj-" + rep("aB3d", 10)
	fakeOpenAIOld  = "sk-" + rep("Zx81", 12)
	fakeGitHub     = "gh" + "p_" + rep("a1B2", 9)
	fakeGitHubPAT  = "github" + "_pat_" + rep("11AB_", 6)
	fakeAWSID      = "AK" + "IA" + rep("Q7RT", 4)
	fakeAWSSecret  = "aws_secret_access_key=" + rep("wJalrXUtnFEMIK7MDENGbPxRfiCY", 2)[:40]
	fakeSlack      = "xo" + "xb-" + "1234567890-" + rep("Ab12", 6)
	fakeSlackHook  = "hooks.slack.com/services/" + "T0123ABCD/B0123ABCD/" + rep("x9Y8", 6)
	fakePEM        = "-----BEGIN " + "RSA PRIVATE KEY-----"
	fakeOpenSSH    = "-----BEGIN " + "OPENSSH PRIVATE KEY-----"
	fakePGP        = "-----BEGIN PGP " + "PRIVATE KEY BLOCK-----"
)

func builtinScanner(t *testing.T) *Scanner {
	t.Helper()
	s, err := NewScanner(DLPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBuiltinPatterns is the table test per pattern: each fires on its key
// shape, and on nothing that merely resembles one.
func TestBuiltinPatterns(t *testing.T) {
	s := builtinScanner(t)
	tests := []struct {
		pattern string
		hits    []string
		misses  []string
	}{
		{"anthropic-key", []string{fakeAnthropic, fakeAnthropicO, "x-api-key: " + fakeAnthropic},
			[]string{"sk-ant-api03-short", "the sk-ant- prefix alone"}},
		{"openai-key", []string{fakeOpenAIProj, fakeOpenAIOld, "Bearer " + fakeOpenAIProj},
			[]string{"sk-proj-short", "task-" + rep("a", 20)}},
		{"github-token", []string{fakeGitHub, "gh" + "s_" + rep("a1B2", 9), fakeGitHubPAT},
			[]string{"ghp_short", "ghq_" + rep("a1B2", 9)}},
		{"aws-access-key", []string{fakeAWSID, "AS" + "IA" + rep("Q7RT", 4)},
			[]string{"AKIA" + rep("Q7RT", 3), "AKIA" + rep("q7rt", 4), "akia" + rep("q7rt", 4)}},
		{"aws-secret-key", []string{fakeAWSSecret, `"AWS_SECRET_ACCESS_KEY": "` + rep("wJalrXUtnFEMIK7MDENG", 2) + `"`},
			[]string{"aws_secret_access_key=short", rep("wJalrXUtnFEMIK7MDENG", 2)}},
		{"slack-token", []string{fakeSlack, "xo" + "xp-" + rep("12ab-", 4), "https://" + fakeSlackHook},
			[]string{"xoxb-short", "xoxz-" + rep("1", 20)}},
		{"private-key", []string{fakePEM, fakeOpenSSH, fakePGP, "-----BEGIN " + "PRIVATE KEY-----", "-----BEGIN " + "ENCRYPTED PRIVATE KEY-----"},
			[]string{"-----BEGIN PUBLIC KEY-----", "-----BEGIN CERTIFICATE-----", "private key"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			for _, hit := range tt.hits {
				f := s.Scan("URL", hit)
				if f == nil || f.Rule != "dlp:"+tt.pattern || f.Where != "URL" {
					t.Errorf("%s: got %+v, want dlp:%s", describeSecret(hit), f, tt.pattern)
				}
				// In a URL it arrives percent-encoded.
				if f := s.Scan("URL", "/x?q="+url.QueryEscape(hit)); f == nil || f.Rule != "dlp:"+tt.pattern {
					t.Errorf("%s percent-encoded: got %+v", describeSecret(hit), f)
				}
			}
			for _, miss := range tt.misses {
				if f := s.Scan("URL", miss); f != nil {
					t.Errorf("%q fired %+v", miss, f)
				}
			}
		})
	}
}

// describeSecret names a test secret by its start: test output is a log
// too.
func describeSecret(s string) string {
	if len(s) > 8 {
		return strconv.Quote(s[:8] + "...")
	}
	return strconv.Quote(s)
}

// TestBuiltinPatternsFindKeysGluedToText: a letter, digit or underscore
// on either side of a key does not hide it (the patterns once began and
// ended with \b).
func TestBuiltinPatternsFindKeysGluedToText(t *testing.T) {
	s := builtinScanner(t)
	keys := map[string]string{
		"anthropic-key": fakeAnthropic, "openai-key": fakeOpenAIOld, "github-token": fakeGitHub,
		"aws-access-key": fakeAWSID, "slack-token": fakeSlack,
	}
	for name, key := range keys {
		for _, glue := range []string{"x", "7", "_"} {
			for _, text := range []string{glue + key, key + glue, glue + key + glue, "/p?q=a" + glue + key} {
				if f := s.Scan("URL", text); f == nil || f.Rule != "dlp:"+name {
					t.Errorf("%s glued to %q: got %+v, want dlp:%s", describeSecret(key), glue, f, name)
				}
			}
		}
	}
	if f := s.Scan("URL", "xghp_"+rep("a1B2", 9)); f == nil {
		t.Error("a GitHub token after a letter passed")
	}
}

func TestHexIsFoundInAnyMixOfCases(t *testing.T) {
	const secret = "correct-horse-battery-staple"
	s, err := NewScanner(DLPConfig{NoBuiltin: true, Secrets: []Secret{{Name: "T", Value: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	lower := hex.EncodeToString([]byte(secret))
	alternating := []byte(lower)
	for i := range alternating {
		if i%2 == 0 {
			alternating[i] = strings.ToUpper(string(alternating[i]))[0]
		}
	}
	for _, form := range []string{lower, strings.ToUpper(lower), string(alternating), strings.ToUpper(lower[:9]) + lower[9:]} {
		if f := s.Scan("URL", "/x?h=0"+form+"9"); f == nil || f.Rule != "dlp:secret:T" {
			t.Errorf("hex %s...: got %+v", form[:12], f)
		}
	}
}

// TestBasicCredentialsAreDecodedInEveryBase64Form: a key shape (found only
// once decoded) in Basic credentials, padded or not, in the standard or the
// URL alphabet.
func TestBasicCredentialsAreDecodedInEveryBase64Form(t *testing.T) {
	s := builtinScanner(t)
	cred := []byte("~~~???:" + fakeGitHub + "x") // the user name makes + and / in base64, the x makes padding
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		v := "Basic " + enc.EncodeToString(cred)
		r := httptest.NewRequest("GET", "http://app.test/", nil)
		r.Header.Set("Authorization", v)
		if f := s.ScanRequest(r); f == nil || f.Rule != "dlp:github-token" || f.Where != "header Authorization" {
			t.Errorf("Basic %s...: got %+v", v[6:14], f)
		}
	}
}

// TestScanRequestFindsSecretsInTheMethodAndHeaderNames, and says where
// without quoting either: net/http has put the header name in canonical
// case, so it is matched in any case.
func TestScanRequestFindsSecretsInTheMethodAndHeaderNames(t *testing.T) {
	const secret = "s3cr3t-value-in-a-name"
	s, err := NewScanner(DLPConfig{Secrets: []Secret{{Name: "S", Value: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, where, rule string
		edit              func(r *http.Request)
	}{
		{"method", "method", "dlp:secret:S", func(r *http.Request) { r.Method = secret }},
		{"key shape as method", "method", "dlp:github-token", func(r *http.Request) { r.Method = fakeGitHub }},
		{"header name", "header name", "dlp:secret:S", func(r *http.Request) { r.Header.Set("X-"+secret, "1") }},
		{"key shape in a header name", "header name", "dlp:github-token", func(r *http.Request) { r.Header.Set("X-"+fakeGitHub, "1") }},
		{"hex in a header name", "header name", "dlp:secret:S", func(r *http.Request) { r.Header.Set("X-"+hex.EncodeToString([]byte(secret)), "1") }},
		{"host in capitals", "target host", "dlp:secret:S", func(r *http.Request) { r.Host = strings.ToUpper(secret) + ".app.test" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://app.test/", nil)
			tt.edit(r)
			f := s.ScanRequest(r)
			if f == nil || f.Rule != tt.rule || f.Where != tt.where {
				t.Fatalf("got %+v, want %s in the %s", f, tt.rule, tt.where)
			}
		})
	}
}

func TestEveryBuiltinPatternHasATableTest(t *testing.T) {
	// The table above covers these names; a new pattern needs a row.
	covered := "anthropic-key openai-key github-token aws-access-key aws-secret-key slack-token private-key"
	for _, name := range BuiltinNames() {
		if !strings.Contains(covered, name) {
			t.Errorf("built-in pattern %s has no table test", name)
		}
	}
}

func TestSecretValuesAreFoundInEveryEncoding(t *testing.T) {
	const secret = "correct-horse-battery-staple/42+x"
	s, err := NewScanner(DLPConfig{NoBuiltin: true, Secrets: []Secret{{Name: "DEPLOY_TOKEN", Value: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(enc *base64.Encoding, prefix string) string {
		return enc.EncodeToString([]byte(prefix + secret + "tail"))
	}
	forms := map[string]string{
		"plain":                  "/upload?t=" + secret,
		"query-escaped":          "/upload?t=" + url.QueryEscape(secret),
		"double-escaped":         "/upload?t=" + url.QueryEscape(url.QueryEscape(secret)),
		"path-escaped":           "/" + url.PathEscape(secret),
		"hex":                    "/" + hex.EncodeToString([]byte(secret)),
		"HEX":                    "/" + strings.ToUpper(hex.EncodeToString([]byte(secret))),
		"base64 at offset 0":     "/" + b64(base64.StdEncoding, ""),
		"base64 at offset 1":     "/" + b64(base64.StdEncoding, "a"),
		"base64 at offset 2":     "/" + b64(base64.StdEncoding, "ab"),
		"base64url at offset 1":  "/" + b64(base64.URLEncoding, "a"),
		"base64url at offset 2":  "/" + b64(base64.RawURLEncoding, "ab"),
		"base64 in a long value": "/" + b64(base64.StdEncoding, "{\"user\":\"me\",\"token\":\""),
	}
	for name, text := range forms {
		f := s.Scan("URL", text)
		if f == nil || f.Rule != "dlp:secret:DEPLOY_TOKEN" {
			t.Errorf("%s: got %+v, want dlp:secret:DEPLOY_TOKEN", name, f)
		}
	}
	for _, miss := range []string{"/upload?t=correct-horse", "/" + base64.StdEncoding.EncodeToString([]byte("correct-horse-battery"))} {
		if f := s.Scan("URL", miss); f != nil {
			t.Errorf("%q fired %+v", miss, f)
		}
	}
}

func TestNewScannerRefusesBadConfigWithoutShowingSecrets(t *testing.T) {
	const short = "hunter2"
	tests := []struct {
		name string
		cfg  DLPConfig
		want string
	}{
		{"short secret", DLPConfig{Secrets: []Secret{{Name: "PIN", Value: short}}}, "DLP secret PIN is 7 bytes"},
		{"unnamed secret", DLPConfig{Secrets: []Secret{{Value: "long enough value"}}}, "no name"},
		{"bad regex", DLPConfig{Patterns: []Pattern{{Name: "x", Regex: "a("}}}, `DLP pattern "x"`},
		{"empty match", DLPConfig{Patterns: []Pattern{{Name: "any", Regex: "a*"}}}, "matches empty text"},
		{"duplicate", DLPConfig{Patterns: []Pattern{{Name: "github-token", Regex: "x"}}}, "defined twice"},
		{"unknown disable", DLPConfig{Disable: []string{"github"}}, `"github": no built-in pattern`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewScanner(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), short) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

func TestDisableAndNoBuiltin(t *testing.T) {
	s, err := NewScanner(DLPConfig{Disable: []string{"github-token"}})
	if err != nil {
		t.Fatal(err)
	}
	if f := s.Scan("URL", fakeGitHub); f != nil {
		t.Errorf("disabled pattern fired: %+v", f)
	}
	if f := s.Scan("URL", fakeAWSID); f == nil {
		t.Error("the other built-ins went off too")
	}
	s, err = NewScanner(DLPConfig{NoBuiltin: true, Patterns: []Pattern{{Name: "internal", Regex: `itk_[a-z0-9]{16}`}}})
	if err != nil {
		t.Fatal(err)
	}
	if f := s.Scan("URL", fakeAWSID); f != nil {
		t.Errorf("built-in fired with NoBuiltin: %+v", f)
	}
	if f := s.Scan("URL", "itk_"+rep("a1", 8)); f == nil || f.Rule != "dlp:internal" {
		t.Errorf("custom pattern: %+v", f)
	}
}

func TestSecretStringNeverShowsTheValue(t *testing.T) {
	s := Secret{Name: "TOKEN", Value: "very-secret-value"}
	for _, out := range []string{s.String(), s.GoString()} {
		if strings.Contains(out, "very-secret") {
			t.Errorf("%q shows the value", out)
		}
	}
}

// TestProxyRefusesRequestsCarryingSecrets sends requests with a secret in
// each place the proxy can see, and checks that the refusal and the audit
// record name the rule and the place but never the secret.
func TestProxyRefusesRequestsCarryingSecrets(t *testing.T) {
	const secret = "s3cr3t-value-of-the-host"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request carrying a secret reached the upstream: %s", r.URL)
	}))
	defer upstream.Close()
	_, port := hostPort(t, upstream.URL)
	ps := strconv.Itoa(port)
	scanner, err := NewScanner(DLPConfig{Secrets: []Secret{{Name: "HOST_SECRET", Value: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	res := &stubResolver{names: map[string][]string{"app.test": {"127.0.0.1"}}}
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + fakeGitHub))
	tests := []struct {
		name, req, method, rule, where, host string
	}{
		{"query", "GET http://app.test:" + ps + "/?key=" + secret + " HTTP/1.1\r\nHost: app.test:" + ps + "\r\n\r\n", "GET", "dlp:secret:HOST_SECRET", "URL", "app.test"},
		{"path, percent-encoded", "GET http://app.test:" + ps + "/" + url.PathEscape(fakeAnthropic) + " HTTP/1.1\r\nHost: app.test:" + ps + "\r\n\r\n", "GET", "dlp:anthropic-key", "URL", "app.test"},
		{"header", "GET http://app.test:" + ps + "/ HTTP/1.1\r\nHost: app.test:" + ps + "\r\nAuthorization: Bearer " + fakeOpenAIProj + "\r\n\r\n", "GET", "dlp:openai-key", "header Authorization", "app.test"},
		{"basic credentials", "GET http://app.test:" + ps + "/ HTTP/1.1\r\nHost: app.test:" + ps + "\r\nAuthorization: Basic " + basic + "\r\n\r\n", "GET", "dlp:github-token", "header Authorization", "app.test"},
		{"host name", "GET http://" + secret + ".app.test:" + ps + "/ HTTP/1.1\r\nHost: " + secret + ".app.test:" + ps + "\r\n\r\n", "GET", "dlp:secret:HOST_SECRET", "target host", "(redacted)"},
		{"CONNECT target", "CONNECT " + secret + ".app.test:443 HTTP/1.1\r\nHost: " + secret + ".app.test:443\r\n\r\n", "CONNECT", "dlp:secret:HOST_SECRET", "target host", "(redacted)"},
		{"CONNECT header", "CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\nProxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+secret)) + "\r\n\r\n", "CONNECT", "dlp:secret:HOST_SECRET", "header Proxy-Authorization", "app.test"},
		{"not a proxy request", "GET /?k=" + secret + " HTTP/1.1\r\nHost: proxy\r\n\r\n", "GET", "dlp:secret:HOST_SECRET", "URL", "proxy"},
		{"method", secret + " http://app.test:" + ps + "/ HTTP/1.1\r\nHost: app.test:" + ps + "\r\n\r\n", "(redacted)", "dlp:secret:HOST_SECRET", "method", "app.test"},
		{"key shape as method", fakeGitHub + " http://app.test:" + ps + "/ HTTP/1.1\r\nHost: app.test:" + ps + "\r\n\r\n", "(redacted)", "dlp:github-token", "method", "app.test"},
		{"method and host", secret + " http://" + secret + ".app.test:" + ps + "/ HTTP/1.1\r\nHost: x\r\n\r\n", "(redacted)", "dlp:secret:HOST_SECRET", "method", "(redacted)"},
		{"header name", "GET http://app.test:" + ps + "/ HTTP/1.1\r\nHost: app.test:" + ps + "\r\nX-" + secret + ": 1\r\n\r\n", "GET", "dlp:secret:HOST_SECRET", "header name", "app.test"},
		{"key shape in a header name", "GET http://app.test:" + ps + "/ HTTP/1.1\r\nHost: app.test:" + ps + "\r\nX-" + fakeGitHub + ": 1\r\n\r\n", "GET", "dlp:github-token", "header name", "app.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxyAddr, rec := startProxyWith(t, Options{
				Policy: mustPolicy(t, "*.app.test:*", "app.test:*"), DLP: scanner, Trust: mustTrust(t, "app.test", "*.app.test"), Resolver: res,
			})
			_, _, resp := rawRequest(t, proxyAddr, tt.req, tt.method)
			body := readBody(t, resp)
			wantBody := "carries a secret in the " + tt.where + " (rule " + tt.rule + ")"
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, wantBody) || resp.Header.Get("X-Bottle-Egress") != "denied" {
				t.Errorf("got %d %q, want 403 saying %q", resp.StatusCode, body, wantBody)
			}
			got := rec.next(t)
			if got.Decision != "deny" || got.Rule != tt.rule || got.Host != tt.host || got.Method != tt.method {
				t.Errorf("record = %+v, want a deny of %s by %s", got, tt.host, tt.rule)
			}
			line, _ := json.Marshal(got)
			for _, leak := range []string{secret, fakeAnthropic, fakeOpenAIProj, fakeGitHub, basic} {
				// Any case: net/http rewrites header names in canonical case.
				leak = strings.ToLower(leak)
				if strings.Contains(strings.ToLower(body), leak) || strings.Contains(strings.ToLower(string(line)), leak) {
					t.Errorf("the refusal or its audit line shows a secret: %s / %s", body, line)
				}
			}
			select {
			case extra := <-rec.ch:
				t.Errorf("more than one record: %+v", extra)
			default:
			}
		})
	}
}

// TestSecretsNeverReachTheAuditThroughRun runs the whole proxy from a
// config, as the sidecar does, and greps everything it wrote.
func TestSecretsNeverReachTheAuditThroughRun(t *testing.T) {
	const secret = "another-host-secret-9f8e"
	cfg := Config{Listen: "127.0.0.1:0", Session: "s-dlp", Allow: []string{"*.example.test:*"},
		DLP: DLPConfig{Secrets: []Secret{{Name: "API_TOKEN", Value: secret}}}}
	addr, stop, done, audit := startRun(t, cfg, defaultLimits)
	for _, req := range []string{
		"GET http://a.example.test/?t=" + secret + " HTTP/1.1\r\nHost: a.example.test\r\n\r\n",
		"CONNECT " + secret + ".example.test:443 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://" + secret + ".other.test/ HTTP/1.1\r\nHost: " + secret + ".other.test\r\n\r\n",
	} {
		method, _, _ := strings.Cut(req, " ")
		_, _, resp := rawRequest(t, addr, req, method)
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d", method, resp.StatusCode)
		}
	}
	stop()
	waitRun(t, done)
	all := audit.String()
	if strings.Contains(all, secret) || !strings.Contains(all, "dlp:secret:API_TOKEN") {
		t.Errorf("audit:\n%s", all)
	}
}
