package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/internal/lockedbuf"
)

const (
	allowLine = `{"time":"2026-11-01T10:00:00Z","event":"decision","method":"CONNECT","host":"api.anthropic.com","port":443,"decision":"allow","rule":"api.anthropic.com"}`
	denyLine  = `{"time":"2026-11-01T10:00:01Z","event":"decision","method":"GET","host":"evil.test","port":80,"decision":"deny","rule":"default-deny","reason":"not on the allowlist"}`
	closeLine = `{"time":"2026-11-01T10:00:02Z","event":"close","method":"CONNECT","host":"api.anthropic.com","port":443,"decision":"allow","rule":"api.anthropic.com","bytes_up":2048,"bytes_down":3145728}`
)

func TestPathRefusesIDsThatAreNotFileNames(t *testing.T) {
	tests := []struct {
		session string
		ok      bool
	}{
		{"a1b2c3", true},
		{"bottle-1.2_x", true},
		{"", false},
		{"../etc/passwd", false},
		{"a/b", false},
		{".hidden", false},
		{strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		if got := Path("/audit", tt.session); (got != "") != tt.ok {
			t.Errorf("Path(%q) = %q, want a path: %v", tt.session, got, tt.ok)
		}
	}
}

func TestOpenKeepsTheFileToItsOwnerAndPrunesOldOnes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, recent := filepath.Join(dir, "old.jsonl"), filepath.Join(dir, "recent.jsonl")
	for _, p := range []string{old, recent, filepath.Join(dir, "notes.txt")} {
		if err := os.WriteFile(p, []byte(allowLine+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	longAgo := time.Now().Add(-Retention - time.Hour)
	for _, p := range []string{old, filepath.Join(dir, "notes.txt")} {
		if err := os.Chtimes(p, longAgo, longAgo); err != nil {
			t.Fatal(err)
		}
	}

	f, err := Open(dir, "s1")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{allowLine, denyLine} {
		if err := f.Write(record(t, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(Path(dir, "s1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := allowLine + "\n" + denyLine + "\n"; string(data) != want {
		t.Errorf("file holds %q, want %q", data, want)
	}
	if st, _ := os.Stat(Path(dir, "s1")); st.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %o, want 600", st.Mode().Perm())
	}
	for path, want := range map[string]bool{old: false, recent: true, filepath.Join(dir, "notes.txt"): true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(path), err == nil, want)
		}
	}
}

func TestOpenRefusesABadSessionAndNilFileWritesNothing(t *testing.T) {
	f, err := Open(t.TempDir(), "../x")
	if err == nil || f != nil {
		t.Fatalf("Open with a bad session id = %v, %v; want an error", f, err)
	}
	if err := f.Write(record(t, allowLine)); err != nil {
		t.Errorf("nil File Write: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("nil File Close: %v", err)
	}
}

func TestListSummarisesSessionsNewestFirst(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, lines ...string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("older.jsonl", allowLine)
	write("newer.jsonl", allowLine, denyLine, closeLine, "not json")
	write("ignored.txt", allowLine)

	got, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Session != "newer" || got[1].Session != "older" {
		t.Fatalf("List = %+v, want newer then older", got)
	}
	if got[0].Decisions != 2 || got[0].Refused != 1 {
		t.Errorf("newer: %d decisions, %d refused; want 2 and 1", got[0].Decisions, got[0].Refused)
	}
	if none, err := List(filepath.Join(dir, "missing")); err != nil || len(none) != 0 {
		t.Errorf("List of a missing folder = %v, %v; want nothing and no error", none, err)
	}
}

func TestPrinter(t *testing.T) {
	tests := []struct {
		name           string
		json, denyOnly bool
		want           []string // substrings of the output, in order
		absent         []string
	}{
		{"table shows every record", false, false,
			[]string{"allow CONNECT api.anthropic.com:443", "deny GET evil.test:80 default-deny not on the allowlist", "closed CONNECT api.anthropic.com:443 api.anthropic.com up 2.0 KiB, down 3.0 MiB"}, nil},
		{"table of refusals only", false, true,
			[]string{"evil.test:80"}, []string{"api.anthropic.com"}},
		{"json as recorded", true, false,
			[]string{allowLine + "\n" + denyLine + "\n" + closeLine + "\n"}, nil},
		{"json refusals only", true, true,
			[]string{denyLine + "\n"}, []string{allowLine}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, warn bytes.Buffer
			p := NewPrinter(&out, &warn, tt.json, tt.denyOnly)
			for _, l := range []string{allowLine, denyLine, closeLine, "garbage"} {
				p.Print([]byte(l))
			}
			p.Flush()
			got := out.String()
			if !tt.json {
				got = strings.Join(strings.Fields(got), " ") // column widths aside
			}
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, a := range tt.absent {
				if strings.Contains(out.String(), a) {
					t.Errorf("output holds %q:\n%s", a, out.String())
				}
			}
			if !strings.Contains(warn.String(), "not a record") {
				t.Errorf("a bad line was not reported: %q", warn.String())
			}
		})
	}
}

func TestReadMissingSessionSaysSo(t *testing.T) {
	err := Read(context.Background(), t.TempDir(), "nosuch", false, NewPrinter(&bytes.Buffer{}, &bytes.Buffer{}, true, false))
	if !errors.Is(err, ErrNoAudit) || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("got %v, want ErrNoAudit naming the session", err)
	}
}

func TestReadFollowsRecordsAsTheyAreWritten(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir, "s1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.Write(record(t, allowLine))

	ctx, cancel := context.WithCancel(context.Background())
	var out lockedbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- Read(ctx, dir, "s1", true, NewPrinter(&out, &bytes.Buffer{}, true, false)) }()

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("output never held %q; it holds %q", want, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(allowLine + "\n")
	// A line written in two parts is printed whole, once.
	raw, err := os.OpenFile(Path(dir, "s1"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.WriteString(denyLine[:20])
	time.Sleep(2 * followPoll)
	raw.WriteString(denyLine[20:] + "\n")
	waitFor(denyLine + "\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got, want := out.String(), allowLine+"\n"+denyLine+"\n"; got != want {
		t.Errorf("followed output %q, want %q", got, want)
	}
}

// hostile is what an agent can put in a host or, through an SNI value, in
// a reason: a newline and a fake allow row, terminal escapes that erase a
// line and move up, bidi controls that reorder what follows, a C1 control,
// DEL and a zero-width joiner.
const hostile = "evil.test\n2026-11-01 10:00:00  allow  CONNECT  fake.test:443  fake.test\r" +
	"\x1b[2K\x1b[1A\u202egro.live\u202c\u2066x\u2069\u200f\u061c\u0085\u009b31m\x7f\u200d\\x1b"

func TestPrinterEscapesWhatAnAgentChose(t *testing.T) {
	rec := egress.Record{Time: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), Event: egress.EventDecision,
		Method: "CONNECT", Host: hostile, Port: 443, Decision: egress.DecisionDeny, Rule: "sni-mismatch", Reason: "TLS names " + hostile}
	line, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, asJSON := range []bool{false, true} {
		var out, warn bytes.Buffer
		p := NewPrinter(&out, &warn, asJSON, false)
		p.Print(line)
		p.Flush()
		got := out.String()
		if n := strings.Count(got, "\n"); n != 1 || !strings.HasSuffix(got, "\n") {
			t.Errorf("json %v: one record printed as %d lines:\n%s", asJSON, n, got)
		}
		for _, r := range strings.TrimSuffix(got, "\n") {
			if !unicode.IsGraphic(r) {
				t.Errorf("json %v: %U reached the terminal in %q", asJSON, r, got)
			}
		}
		if asJSON {
			var back egress.Record
			if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Host != hostile || back.Reason != rec.Reason {
				t.Errorf("the escaped JSON does not read back as the record: %v, %+v", err, back)
			}
		} else if !strings.Contains(got, `\n2026-11-01`) || !strings.Contains(got, `\x1b[2K`) || !strings.Contains(got, `\u202e`) {
			t.Errorf("the table does not show the escapes:\n%s", got)
		}
	}
}

func TestPrintableLeavesPlainTextAlone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"api.anthropic.com", "api.anthropic.com"},
		{"not on the allowlist", "not on the allowlist"},
		{"bücher.example", "bücher.example"},
		{"", ""},
		{"a\nb", `"a\nb"`},
		{"\u202eevil", `"\u202eevil"`},
		{`a\nb`, `"a\\nb"`},
		{`"quoted"`, `"\"quoted\""`},
		{"\xff", `"\xff"`},
	}
	for _, tt := range tests {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// record is an audit line as the record it encodes.
func record(t *testing.T, line string) egress.Record {
	t.Helper()
	var r egress.Record
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	return r
}
