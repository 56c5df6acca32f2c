package termclient

import (
	"strings"
	"testing"
)

func TestParseDetachKeys(t *testing.T) {
	tests := []struct {
		spec   string
		seq    string // "" for an error
		name   string
		errHas string
	}{
		{"ctrl-p,ctrl-q", "\x10\x11", "Ctrl-P Ctrl-Q", ""},
		{"CTRL-A, d", "\x01d", "Ctrl-A 'd'", ""},
		{"ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", "\x00\x1b\x1c\x1d\x1e\x1f", "Ctrl-@ Ctrl-[ Ctrl-\\ Ctrl-] Ctrl-^ Ctrl-_", ""},
		{"ctrl-]", "\x1d", "Ctrl-]", ""},
		{"", "", "", "no keys given"},
		{"ctrl-p,", "", "", `"" is neither`},
		{"ctrl-1", "", "", "after ctrl- comes"},
		{"alt-x", "", "", `"alt-x" is neither`},
		{"ctrl-pq", "", "", "ctrl-X"},
	}
	for _, tt := range tests {
		k, err := ParseDetachKeys(tt.spec)
		if tt.seq == "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), DefaultDetachKeys) {
				t.Errorf("ParseDetachKeys(%q) error = %v, want one with %q that shows the syntax", tt.spec, err, tt.errHas)
			}
			continue
		}
		if err != nil || string(k.seq) != tt.seq || k.String() != tt.name {
			t.Errorf("ParseDetachKeys(%q) = %q %q, %v; want %q %q", tt.spec, k.seq, k, err, tt.seq, tt.name)
		}
	}
	if got := (DetachKeys{}).String(); got != "Ctrl-P Ctrl-Q" {
		t.Errorf("the zero DetachKeys is %q, want the default", got)
	}
}

func TestDetectorFindsTheKeysAcrossReads(t *testing.T) {
	const p, q = "\x10", "\x11"
	tests := []struct {
		name   string
		keys   string
		reads  []string
		pass   string // what reaches the process, in all
		detach bool
	}{
		{"plain input", DefaultDetachKeys, []string{"echo hi\r"}, "echo hi\r", false},
		{"the keys in one read", DefaultDetachKeys, []string{"ls" + p + q + "dropped"}, "ls", true},
		{"split across reads", DefaultDetachKeys, []string{"ls" + p, q}, "ls", true},
		{"a lone Ctrl-P goes through with the next key", DefaultDetachKeys, []string{p, "x"}, p + "x", false},
		{"a held Ctrl-P waits for the next read", DefaultDetachKeys, []string{"a" + p}, "a", false},
		{"Ctrl-P twice then Ctrl-Q", DefaultDetachKeys, []string{p, p, q}, p, true},
		{"Ctrl-Q alone", DefaultDetachKeys, []string{q + "x"}, q + "x", false},
		{"a longer sequence restarts inside itself", "ctrl-p,ctrl-p,ctrl-q", []string{p + p, p + q}, p, true},
		{"one key", "ctrl-]", []string{"ab\x1dc"}, "ab", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseDetachKeys(tt.keys)
			if err != nil {
				t.Fatal(err)
			}
			d := detector{seq: k.seq}
			var pass []byte
			detach := false
			for _, r := range tt.reads {
				if detach {
					t.Fatalf("read %q after the detach", r)
				}
				var out []byte
				out, detach = d.feed([]byte(r))
				pass = append(pass, out...)
			}
			if string(pass) != tt.pass || detach != tt.detach {
				t.Errorf("passed %q, detach %v; want %q, %v", pass, detach, tt.pass, tt.detach)
			}
		})
	}
}
