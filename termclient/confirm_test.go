package termclient

import (
	"io"
	"strings"
	"testing"
)

func TestConfirmReadsOnlyTheAnswerLine(t *testing.T) {
	tests := []struct {
		in   string
		want bool
		rest string // what is left for the agent
	}{
		{"y\n", true, ""},
		{"YES\nls -la\n", true, "ls -la\n"},
		{"n\nmore", false, "more"},
		{"\n", false, ""},
		{"", false, ""},
		{"y", true, ""},
	}
	for _, tt := range tests {
		in := strings.NewReader(tt.in)
		if got := confirm(in, io.Discard); got != tt.want {
			t.Errorf("confirm(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if rest, _ := io.ReadAll(in); string(rest) != tt.rest {
			t.Errorf("confirm(%q) left %q for the agent, want %q", tt.in, rest, tt.rest)
		}
	}
}
