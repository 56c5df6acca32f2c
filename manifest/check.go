package manifest

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bottle-dev/bottle/egress"
)

// imageRef is the grammar of Docker image references (as in
// github.com/distribution/reference): [domain[:port]/]path[:tag][@digest].
var imageRef = regexp.MustCompile(func() string {
	const (
		label     = `[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?`
		domain    = label + `(?:\.` + label + `)*(?::[0-9]+)?`
		component = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
		tag       = `[\w][\w.-]{0,127}`
		digest    = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
	)
	return `^(?:` + domain + `/)?` + component + `(?:/` + component + `)*(?::` + tag + `)?(?:@` + digest + `)?$`
}())

func checkImage(s string) error {
	if !imageRef.MatchString(s) {
		return fmt.Errorf("%q is not an image reference; write one like debian:bookworm or registry.example.com/team/tool:1 (lowercase name)", s)
	}
	return nil
}

// resourceName keeps agent and bottle names usable in Docker container,
// network and label names.
var resourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func checkName(s string) error {
	if !resourceName.MatchString(s) {
		return errors.New(`invalid name; use letters, digits, ".", "_" and "-", starting with a letter or digit`)
	}
	return nil
}

var hostLabel = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// isHostname reports whether s (lowercase) is a DNS hostname (RFC 1123).
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// checkSSHHost accepts what ssh can connect to: a hostname or an IP address.
func checkSSHHost(s string) (string, error) {
	h := strings.ToLower(s)
	if isHostname(h) || net.ParseIP(h) != nil {
		return h, nil
	}
	return "", fmt.Errorf("%q is not a hostname or IP address; write one like github.com (a port goes in port:)", s)
}

// sshUser refuses what would change the meaning of user@host on ssh's
// command line.
var sshUser = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*$`)

func checkSSHUser(s string) error {
	if !sshUser.MatchString(s) {
		return fmt.Errorf("%q is not a user name; use letters, digits, \".\", \"_\" and \"-\"", s)
	}
	return nil
}

// AllowEntry checks one egress allowlist or blocklist entry as bottle.yaml
// does, with the proxy's own parser, and returns it in the form the proxy
// matches. The error says what is wrong with the entry and quotes it.
func AllowEntry(s string) (string, error) { return allowEntry(s) }

// allowEntry checks one egress allowlist entry and returns it in the form
// the proxy matches: lowercase, with the port in canonical form. Entries
// are host, *.domain, host:port, *.domain:port or host:*, or an IP
// address ([v6] with a port). The proxy's own parser has the last word, so
// what passes here is what the proxy will run with.
func allowEntry(s string) (string, error) {
	e := strings.ToLower(s)
	if _, rest, ok := strings.Cut(e, "://"); ok {
		host, _, _ := strings.Cut(rest, "/")
		return "", fmt.Errorf("%q is a URL; write the host only: %q", s, host)
	}
	if host, _, ok := strings.Cut(e, "/"); ok {
		return "", fmt.Errorf("%q has a path; write the host only: %q", s, host)
	}
	if host, port, ok := strings.Cut(e, ":"); ok && port != "*" && !strings.Contains(port, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' {
			return "", fmt.Errorf("%q has a bad port; use a number from 1 to 65535, or * for any port", s)
		}
		e = host + ":" + strconv.Itoa(n)
	}
	if _, err := egress.NewPolicy([]string{e}); err != nil {
		reason := err
		if inner := errors.Unwrap(err); inner != nil {
			reason = inner
		}
		return "", fmt.Errorf("%q is not a host (%v); write host, *.domain, host:port, *.domain:port or host:*", s, reason)
	}
	return e, nil
}

// memorySize is the spelling docker run --memory accepts: a whole number
// with an optional binary unit.
var memorySize = regexp.MustCompile(`^([0-9]+) ?([bkmgt]|[kmgt]i?b)?$`)

// minMemory is the smallest limit Docker accepts.
const minMemory = 6 << 20

func parseMemory(s string) (int64, error) {
	m := memorySize.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size; write a number of bytes or one with a unit, like 512m or 2g", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	shift := map[byte]uint{'k': 10, 'm': 20, 'g': 30, 't': 40}[(m[2] + "b")[0]]
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return checkMemory(n << shift)
}

func checkMemory(n int64) (int64, error) {
	switch {
	case n < 0:
		return 0, errors.New("must not be negative; use 0 for no limit")
	case n > 0 && n < minMemory:
		return 0, fmt.Errorf("%d bytes is below Docker's minimum of 6m; raise it or use 0 for no limit", n)
	}
	return n, nil
}

// trustedEntry checks one egress.trusted entry: a host, *.domain, an IP
// address or a CIDR range, without a port.
func trustedEntry(s string) (string, error) {
	e := strings.ToLower(s)
	if _, err := egress.NewTrust([]string{e}); err != nil {
		return "", fmt.Errorf("%q is not a trusted host; write a host, *.domain, an IP address or a CIDR range like 10.0.0.0/8, without a port", s)
	}
	return e, nil
}

// builtinPattern is an entry of dlp.disable.
func builtinPattern(s string) (string, error) {
	if !slices.Contains(egress.BuiltinNames(), s) {
		return "", fmt.Errorf("%q is not a built-in pattern; they are %s", s, strings.Join(egress.BuiltinNames(), ", "))
	}
	return s, nil
}

// checkPatternName keeps DLP pattern names readable in audit lines.
func checkPatternName(s string) error {
	if s == "" || len(s) > 64 {
		return errors.New("a pattern name is 1 to 64 characters")
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return errors.New("a pattern name has no control characters")
		}
	}
	return nil
}

// checkPatternRegex compiles a DLP regular expression the way the proxy
// will, and refuses one that matches empty text: it would refuse every
// request.
func checkPatternRegex(s string) error {
	re, err := regexp.Compile(s)
	if err != nil {
		return fmt.Errorf("not a regular expression (RE2 syntax): %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	if re.MatchString("") {
		return fmt.Errorf("%q matches empty text, so it would refuse every request", s)
	}
	return nil
}
