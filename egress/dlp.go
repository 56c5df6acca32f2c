package egress

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// BuiltinPatterns are the key shapes the proxy refuses unless told not to.
// Each is named by its rule ("dlp:NAME" in the audit and the refusal).
var BuiltinPatterns = []Pattern{
	// No pattern is anchored with \b: a key glued to a letter, digit or
	// underscore ("x" + key) is still the key, and still leaves.
	//
	// sk-ant-api03-..., sk-ant-oat01-..., sk-ant-admin01-...
	{Name: "anthropic-key", Regex: `sk-ant-[a-z]+[0-9]*-[A-Za-z0-9_-]{20,}`},
	// Project, service-account and admin keys, and the older plain form.
	{Name: "openai-key", Regex: `sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|sk-[A-Za-z0-9]{32,}`},
	// Classic tokens (personal, OAuth, user-to-server, server-to-server,
	// refresh) and fine-grained personal access tokens.
	{Name: "github-token", Regex: `gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}`},
	{Name: "aws-access-key", Regex: `(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA)[A-Z0-9]{16}`},
	// A secret access key has no shape of its own; its usual label does.
	{Name: "aws-secret-key", Regex: `(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}`},
	{Name: "slack-token", Regex: `xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[0-9]+-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+`},
	// RSA, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8 and PGP private key blocks.
	{Name: "private-key", Regex: `-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----`},
}

// minSecretLen is the shortest secret value the proxy accepts: a shorter
// one would match ordinary text and refuse innocent requests.
const minSecretLen = 8

// Scanner finds secrets in text. It is safe for concurrent use.
type Scanner struct {
	patterns []namedRegexp
	secrets  []secretForms
}

type namedRegexp struct {
	name string
	re   *regexp.Regexp
	fold *regexp.Regexp // re ignoring case, for text whose case is not kept
}

// secretForms are the spellings of one secret value that the scanner
// looks for: as is, and as base64 (standard and URL alphabets, at each
// alignment), hex and percent-encoding produce it.
type secretForms struct {
	name  string
	forms []string // matched as they are
	hex   string   // lowercase; matched in any mix of cases
	lower []string // forms and hex in lowercase, for text whose case is not kept
}

// Finding is one secret found: which rule fired, and where. It never holds
// the secret.
type Finding struct {
	Rule  string // "dlp:PATTERN" or "dlp:secret:NAME"
	Where string // "URL", "header Authorization", "target host", "TLS server name", ...
}

// NewScanner compiles cfg.
func NewScanner(cfg DLPConfig) (*Scanner, error) {
	s := &Scanner{}
	seen := map[string]bool{}
	add := func(p Pattern) error {
		if p.Name == "" {
			return errors.New("egress: a DLP pattern has no name")
		}
		if seen[p.Name] {
			return fmt.Errorf("egress: DLP pattern %q is defined twice", p.Name)
		}
		seen[p.Name] = true
		re, err := regexp.Compile(p.Regex)
		if err != nil {
			return fmt.Errorf("egress: DLP pattern %q: %w", p.Name, err)
		}
		if re.MatchString("") {
			return fmt.Errorf("egress: DLP pattern %q matches empty text, so it would refuse every request", p.Name)
		}
		// Cannot fail: re compiled, and a leading flag group is valid before any regexp.
		fold := regexp.MustCompile("(?i)" + p.Regex)
		s.patterns = append(s.patterns, namedRegexp{p.Name, re, fold})
		return nil
	}
	for _, name := range cfg.Disable {
		if !slices.ContainsFunc(BuiltinPatterns, func(p Pattern) bool { return p.Name == name }) {
			return nil, fmt.Errorf("egress: cannot disable DLP pattern %q: no built-in pattern has that name (they are %s)", name, strings.Join(BuiltinNames(), ", "))
		}
	}
	if !cfg.NoBuiltin {
		for _, p := range BuiltinPatterns {
			if !slices.Contains(cfg.Disable, p.Name) {
				if err := add(p); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, p := range cfg.Patterns {
		if err := add(p); err != nil {
			return nil, err
		}
	}
	for _, sec := range cfg.Secrets {
		if sec.Name == "" {
			return nil, errors.New("egress: a DLP secret has no name")
		}
		if len(sec.Value) < minSecretLen {
			// Say how long, never what.
			return nil, fmt.Errorf("egress: DLP secret %s is %d bytes; at least %d are needed to tell it from ordinary text", sec.Name, len(sec.Value), minSecretLen)
		}
		s.secrets = append(s.secrets, newSecretForms(sec.Name, sec.Value))
	}
	return s, nil
}

// BuiltinNames lists the built-in patterns' names.
func BuiltinNames() []string {
	names := make([]string, len(BuiltinPatterns))
	for i, p := range BuiltinPatterns {
		names[i] = p.Name
	}
	return names
}

func newSecretForms(name, v string) secretForms {
	sf := secretForms{name: name, forms: encodings(v), hex: hex.EncodeToString([]byte(v))}
	for _, f := range append(slices.Clone(sf.forms), sf.hex) {
		sf.lower = append(sf.lower, asciiLower(f))
	}
	slices.Sort(sf.lower)
	sf.lower = slices.Compact(sf.lower)
	return sf
}

// encodings returns v and the spellings an agent could give it on the way
// out without changing what it is, hex aside (it is matched in any case).
func encodings(v string) []string {
	forms := []string{v}
	if q := url.QueryEscape(v); q != v {
		forms = append(forms, q)
	}
	if q := url.PathEscape(v); q != v {
		forms = append(forms, q)
	}
	// Base64 of v inside a longer payload depends on where v starts
	// relative to a 3-byte group: keep, for each of the three offsets, the
	// characters that only v's bits determine.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := range 3 {
			full := enc.EncodeToString(append(make([]byte, k), v...))
			start := (k*8 + 5) / 6
			end := ((k + len(v)) * 8) / 6
			if end-start >= minSecretLen {
				forms = append(forms, full[start:end])
			}
		}
	}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// Scan looks for a secret in text, also in its percent-decoded form.
func (s *Scanner) Scan(where, text string) *Finding {
	return s.scan(where, text, false)
}

// scanFold is Scan for text whose case does not survive on its way out
// (host names; header names, which net/http rewrites in canonical case
// before the scanner sees them): it matches in any case.
func (s *Scanner) scanFold(where, text string) *Finding {
	if f := s.scan(where, text, false); f != nil {
		return f
	}
	return s.scan(where, text, true)
}

func (s *Scanner) scan(where, text string, fold bool) *Finding {
	if s == nil || text == "" {
		return nil
	}
	for _, t := range decodings(text) {
		if f := s.scanOne(where, t, fold); f != nil {
			return f
		}
	}
	return nil
}

func (s *Scanner) scanOne(where, text string, fold bool) *Finding {
	// Decoders of base64 (and people reading hex) skip whitespace, and an
	// ASCII secret in UTF-16 is the secret with NULs between its bytes: the
	// secret's forms are also looked for with those removed. Key shapes
	// only without NULs: whitespace ends a key.
	bare := strings.ReplaceAll(text, "\x00", "")
	compact := strings.Map(func(r rune) rune {
		if r == 0 || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' {
			return -1
		}
		return r
	}, text)
	for _, sec := range s.secrets {
		if sec.in(text, fold) || sec.in(compact, fold) {
			return &Finding{Rule: "dlp:secret:" + sec.name, Where: where}
		}
	}
	for _, p := range s.patterns {
		re := p.re
		if fold {
			re = p.fold
		}
		if re.MatchString(text) || bare != text && re.MatchString(bare) {
			return &Finding{Rule: "dlp:" + p.name, Where: where}
		}
	}
	return nil
}

// in reports whether text holds one of the secret's forms: hex in any case,
// and the others as they are or, with fold, in any case.
func (sec secretForms) in(text string, fold bool) bool {
	lower := asciiLower(text)
	if strings.Contains(lower, sec.hex) {
		return true
	}
	if fold {
		return slices.ContainsFunc(sec.lower, func(form string) bool { return strings.Contains(lower, form) })
	}
	return slices.ContainsFunc(sec.forms, func(form string) bool { return strings.Contains(text, form) })
}

// asciiLower lowers ASCII letters only, so that every other byte, valid
// UTF-8 or not, stays where it was and a match survives around it.
func asciiLower(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// maxDecodings bounds how many times percent-decoding is undone.
const maxDecodings = 8

// decodings returns text and what percent-decoding makes of it, again and
// again until nothing changes (a secret encoded many times over is still the
// secret, for an upstream that decodes as often).
func decodings(text string) []string {
	out := []string{text}
	cur := text
	for range maxDecodings {
		if !strings.ContainsAny(cur, "%+") {
			break
		}
		dec, err := url.QueryUnescape(cur)
		if err != nil {
			// Decode what can be decoded: a stray % must not hide the rest.
			dec = lenientUnescape(cur)
		}
		if dec == cur {
			break
		}
		out = append(out, dec)
		cur = dec
	}
	return out
}

// lenientUnescape decodes valid %XX escapes and "+" and leaves the rest.
func lenientUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '+':
			b.WriteByte(' ')
		case s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v, _ := hex.DecodeString(s[i+1 : i+3])
			b.Write(v)
			i += 2
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// ScanRequest looks for a secret in what a proxy request shows: its
// method, its target (request line and Host), and every header, name and
// value, with Basic credentials decoded. Bodies are not read. Where never
// quotes the request: a header is named only when its name was scanned
// clean.
func (s *Scanner) ScanRequest(r *http.Request) *Finding {
	if s == nil {
		return nil
	}
	if f := s.Scan("method", r.Method); f != nil {
		return f
	}
	if f := s.scanHost(r); f != nil {
		return f
	}
	if f := s.Scan("URL", r.RequestURI); f != nil {
		return f
	}
	if r.URL != nil {
		if f := s.Scan("URL", r.URL.String()); f != nil {
			return f
		}
	}
	for name, values := range r.Header {
		if f := s.scanFold("header name", name); f != nil {
			return f
		}
		where := "header " + name
		for _, v := range values {
			if f := s.Scan(where, v); f != nil {
				return f
			}
			if f := s.scanBasic(where, v); f != nil {
				return f
			}
		}
	}
	return nil
}

// scanHost scans the target's host in every form the proxy sees or writes
// down: the Host, the URL's host, and the host it records. Host names keep
// no case, so neither does the match.
func (s *Scanner) scanHost(r *http.Request) *Finding {
	hosts := []string{r.Host}
	if r.URL != nil {
		hosts = append(hosts, r.URL.Host)
	}
	host, _ := requestTarget(r)
	for _, h := range append(hosts, host) {
		if f := s.scanFold("target host", h); f != nil {
			return f
		}
	}
	return nil
}

// scanBasic decodes Basic credentials (user:password in base64), where a
// token usually sits as the password. Clients differ in padding, alphabet
// and the space after "Basic", and lenient servers skip what is not base64:
// so does the decoding here.
func (s *Scanner) scanBasic(where, v string) *Finding {
	fields := strings.Fields(v)
	if len(fields) < 2 || !strings.EqualFold(fields[0], "basic") {
		return nil
	}
	cred := strings.Map(func(r rune) rune {
		switch {
		case 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '+', r == '/':
			return r
		case r == '-':
			return '+'
		case r == '_':
			return '/'
		}
		return -1
	}, strings.Join(fields[1:], ""))
	if len(cred)%4 == 1 {
		cred = cred[:len(cred)-1] // a lone trailing character carries no whole byte
	}
	dec, err := base64.RawStdEncoding.DecodeString(cred)
	if err != nil {
		return nil
	}
	return s.Scan(where, string(dec))
}
