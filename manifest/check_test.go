package manifest

import (
	"strings"
	"testing"
)

func TestAllowEntryNormalisesGoodEntriesAndRefusesBadOnes(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"github.com", "github.com", ""},
		{"GitHub.COM", "github.com", ""},
		{"*.anthropic.com", "*.anthropic.com", ""},
		{"github.com:22", "github.com:22", ""},
		{"github.com:0022", "github.com:22", ""},
		{"*.example.org:443", "*.example.org:443", ""},
		{"example.org:*", "example.org:*", ""},
		{"localhost", "localhost", ""},
		{"10.0.0.1", "10.0.0.1", ""},
		{"10.0.0.1:8080", "10.0.0.1:8080", ""},
		{"[::1]:8080", "[::1]:8080", ""},
		{"::1", "::1", ""},
		{"under_score.example", "under_score.example", ""},
		{"127.1", "", "is not a host"},
		{"0x7f.0.0.1", "", "is not a host"},
		{"*.1", "", "is not a host"},
		{"[10.0.0.1]:80", "", "is not a host"},
		{"https://github.com", "", `is a URL; write the host only: "github.com"`},
		{"http://example.org:8080/x", "", `is a URL; write the host only: "example.org:8080"`},
		{"github.com/org", "", `has a path; write the host only: "github.com"`},
		{"github.com:0", "", "has a bad port"},
		{"github.com:65536", "", "has a bad port"},
		{"github.com:+22", "", "has a bad port"},
		{"github.com:ssh", "", "has a bad port"},
		{"*", "", "is not a host"},
		{"*.", "", "is not a host"},
		{"a.*.com", "", "is not a host"},
		{"two words", "", "is not a host"},
		{"", "", "is not a host"},
		{strings.Repeat("a", 64) + ".com", "", "is not a host"},
	}
	for _, tt := range tests {
		got, err := allowEntry(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("allowEntry(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("allowEntry(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestParseMemoryReadsDockerSizes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0", 0, ""},
		{"8388608", 8 << 20, ""},
		{"8388608b", 8 << 20, ""},
		{"10240k", 10 << 20, ""},
		{"512m", 512 << 20, ""},
		{"512M", 512 << 20, ""},
		{"512mb", 512 << 20, ""},
		{"512MiB", 512 << 20, ""},
		{"2g", 2 << 30, ""},
		{"1t", 1 << 40, ""},
		{"1k", 0, "below Docker's minimum"},
		{"1.5g", 0, "is not a size"},
		{"2x", 0, "is not a size"},
		{"-1g", 0, "is not a size"},
		{"g", 0, "is not a size"},
		{"99999999999t", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := parseMemory(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("parseMemory(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseMemory(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestCheckImageAcceptsDockerReferences(t *testing.T) {
	tests := []struct {
		ref  string
		good bool
	}{
		{"debian", true},
		{"debian:bookworm", true},
		{"bottle/base:bookworm", true},
		{"registry.example.com:5000/team/tool:1.2", true},
		{"localhost/x@sha256:" + strings.Repeat("ab", 32), true},
		{"my_image__x-y", true},
		{"Debian", false},
		{"debian:", false},
		{"debian bookworm", false},
		{"https://registry/x", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := checkImage(tt.ref); (err == nil) != tt.good {
			t.Errorf("checkImage(%q) = %v, want good=%v", tt.ref, err, tt.good)
		}
	}
}

func TestErrorLeavesOutUnknownLineAndField(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{"bottle.yaml", 7, "bottles.web.runtime", "bad"}, "bottle.yaml:7: bottles.web.runtime: bad"},
		{Error{"bottle.yaml", 3, "", "YAML syntax error: x"}, "bottle.yaml:3: YAML syntax error: x"},
		{Error{"bottle.yaml", 0, "", "YAML syntax error: x"}, "bottle.yaml: YAML syntax error: x"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
