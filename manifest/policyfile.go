package manifest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// A policy file has the shape of pipelock's main fields, for users who
// keep their egress policy there. The built-in proxy enforces this subset:
//
//	version: 1
//	mode: strict                  # or balanced; the built-in proxy is always allowlist-only
//	enforce: true
//	api_allowlist: ["*.anthropic.com", github.com]
//	trusted_domains: [git.internal]         # may resolve to private addresses
//	ssrf: {ip_allowlist: [10.20.0.0/16]}    # trusted address ranges
//	fetch_proxy: {monitoring: {blocklist: ["*.pastebin.com"]}}
//	dlp:
//	  include_defaults: true
//	  patterns:
//	    - {name: "Internal Token", regex: 'itk_[a-z0-9]{32}', severity: critical}
//
// As in pipelock, "*.domain" covers the domain itself too. Every other
// field is an error naming its file, line and field: a control the user
// believes is on but the proxy does not enforce is worse than a refusal to
// start.

// policyEnforced is what the message for an unsupported field lists.
const policyEnforced = "api_allowlist, trusted_domains, ssrf.ip_allowlist, fetch_proxy.monitoring.blocklist, dlp.include_defaults and dlp.patterns (with version, mode and enforce)"

// policyFile reads the policy file named by f and merges it into e. Its
// problems name the policy file and its own lines, and sort with the
// manifest line that names it.
func (p *parser) policyFile(f field, e *Egress) {
	path, ok := p.existing(f, false)
	if !ok {
		return
	}
	e.PolicyFile = path
	data, err := os.ReadFile(path)
	if err != nil {
		p.errorf(f, "%v", err)
		return
	}
	pp := &parser{file: path, base: filepath.Dir(path)}
	pp.policy(data, e)
	for _, prob := range pp.problems.list {
		p.add(f.val.Line, prob.err)
	}
}

func (p *parser) policy(data []byte, e *Egress) {
	root, ok := p.document(data)
	if !ok {
		return
	}
	fs := p.policyFields(field{key: root, val: root}, "version", "mode", "enforce", "api_allowlist", "trusted_domains", "ssrf", "fetch_proxy", "dlp")
	if fs == nil {
		return
	}
	if v, ok := fs["version"]; ok {
		if n, ok := p.int(v); ok && n != 1 {
			p.errorf(v, "version %d is not known; this is pipelock's config version 1", n)
		}
	}
	if m, ok := fs["mode"]; ok {
		if s, ok := p.str(m); ok {
			switch s {
			case "strict", "balanced":
			case "audit":
				p.errorf(m, "audit mode blocks nothing, and the built-in proxy always enforces; use strict")
			default:
				p.errorf(m, "must be strict or balanced (got %q)", s)
			}
		}
	}
	if en, ok := fs["enforce"]; ok {
		if v, ok := p.bool(en); ok && !v {
			p.errorf(en, "the built-in proxy always enforces; remove enforce: false")
		}
	}
	if a, ok := fs["api_allowlist"]; ok {
		e.Allow = appendNew(e.Allow, p.policyHosts(a, allowEntry)...)
	}
	if tr, ok := fs["trusted_domains"]; ok {
		e.Trusted = appendNew(e.Trusted, p.policyHosts(tr, trustedEntry)...)
	}
	if s, ok := fs["ssrf"]; ok {
		if sfs := p.policyFields(s, "ip_allowlist"); sfs != nil {
			if ips, ok := sfs["ip_allowlist"]; ok {
				e.Trusted = appendNew(e.Trusted, p.list(ips, addrOrRange)...)
			}
		}
	}
	if fp, ok := fs["fetch_proxy"]; ok {
		if ffs := p.policyFields(fp, "monitoring"); ffs != nil {
			if mon, ok := ffs["monitoring"]; ok {
				if mfs := p.policyFields(mon, "blocklist"); mfs != nil {
					if bl, ok := mfs["blocklist"]; ok {
						e.Block = appendNew(e.Block, p.policyHosts(bl, allowEntry)...)
					}
				}
			}
		}
	}
	if d, ok := fs["dlp"]; ok {
		p.policyDLP(d, &e.DLP)
	}
}

// policyFields is fields with a message that says what the built-in proxy
// enforces: the fields it does not read are controls of pipelock's that it
// does not have, or typos. It returns nil when f is not a mapping.
func (p *parser) policyFields(f field, allowed ...string) map[string]field {
	out, _ := p.fieldsOr(f, "not enforced by bottle's built-in proxy, which enforces "+policyEnforced+"; remove it, or run pipelock itself as the bottle's sidecar (sidecar: {image: ...})", allowed)
	return out
}

// policyHosts reads a list of pipelock domains. "*.domain" covers the
// domain itself there, so it becomes two entries here.
func (p *parser) policyHosts(f field, check func(string) (string, error)) []string {
	var out []string
	for _, entry := range p.list(f, check) {
		out = append(out, entry)
		if apex, ok := strings.CutPrefix(entry, "*."); ok {
			out = append(out, apex)
		}
	}
	return out
}

func (p *parser) policyDLP(f field, d *DLP) {
	fs := p.policyFields(f, "include_defaults", "patterns")
	if fs == nil {
		return
	}
	if inc, ok := fs["include_defaults"]; ok {
		if v, ok := p.bool(inc); ok && !v {
			d.NoBuiltin = true
		}
	}
	if pats, ok := fs["patterns"]; ok {
		items, _ := p.items(pats)
		for _, it := range items {
			if it.val.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(it.val.Content); i += 2 {
					if k := it.val.Content[i]; k.Value == "validator" {
						p.errorAt(k.Line, join(it.path, "validator"), "checksum validators are not supported by the built-in proxy; remove the pattern or its validator")
					}
				}
			}
			if pat, ok := p.dlpPattern(it, "name", "regex", "severity", "validator"); ok {
				p.addPattern(d, it, pat)
			}
		}
	}
}

// appendNew appends the entries not already in list.
func appendNew(list []string, entries ...string) []string {
	for _, e := range entries {
		if !slices.Contains(list, e) {
			list = append(list, e)
		}
	}
	return list
}

// addrOrRange is an entry of ssrf.ip_allowlist.
func addrOrRange(s string) (string, error) {
	if _, err := netip.ParsePrefix(s); err == nil {
		return strings.ToLower(s), nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return strings.ToLower(s), nil
	}
	return "", fmt.Errorf("%q is not an IP address or CIDR range like 10.0.0.0/8", s)
}
