package termclient

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/rpc"
)

func TestPrintSessions(t *testing.T) {
	code := 0
	sessions := []rpc.SessionInfo{
		{Session: "0000abcd", Agent: "claude", State: "ready", Persist: true, Attached: 0, Execs: []rpc.ExecInfo{
			{Exec: "0000abcd-1", Argv: []string{"claude", "--append-system-prompt-file", "/p"}, Tty: true, Running: true},
			{Exec: "0000abcd-2", Argv: []string{"make"}, Running: true},
			{Exec: "0000abcd-3", Argv: []string{"bash"}, Tty: true, Code: &code},
		}},
		{Session: "0000beef", Agent: "evil\x1b[2K", State: "failed", Attached: 2, Error: "container vanished\nbottle: fine",
			Execs: []rpc.ExecInfo{}},
	}
	var out bytes.Buffer
	PrintSessions(&out, sessions)
	want := `SESSION   AGENT          STATE   PERSIST  ATTACHED  RUNNING
0000abcd  claude         ready   yes      0         0000abcd-1 claude, 0000abcd-2 make (no tty)
0000beef  "evil\x1b[2K"  failed  no       2         -
0000beef: "container vanished\nbottle: fine"
`
	if out.String() != want {
		t.Errorf("ls printed\n%s\nwant\n%s", out.String(), want)
	}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		checkGraphic(t, line)
	}
}

func TestPrintNoSessions(t *testing.T) {
	var out bytes.Buffer
	PrintSessions(&out, nil)
	if out.String() != "no bottles\n" {
		t.Errorf("ls printed %q for no sessions", out.String())
	}
}
