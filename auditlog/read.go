package auditlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bottle-dev/bottle/egress"
)

// Summary is one session's audit at a glance.
type Summary struct {
	Session   string
	Last      time.Time // time of the newest record
	Decisions int
	Refused   int
}

// List summarises the sessions that have an audit file in dir, newest
// first. A folder that does not exist yet holds none.
func List(dir string) ([]Summary, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing audits: %w", err)
	}
	var out []Summary
	for _, de := range entries {
		session, ok := strings.CutSuffix(de.Name(), suffix)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		s, err := summarise(filepath.Join(dir, de.Name()))
		if err != nil {
			continue // removed or unreadable since the listing: not an audit to show
		}
		s.Session = session
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out, nil
}

func summarise(path string) (Summary, error) {
	var s Summary
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec egress.Record
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if rec.Event == egress.EventDecision {
			s.Decisions++
		}
		if rec.Decision == egress.DecisionDeny {
			s.Refused++
		}
		if rec.Time.After(s.Last) {
			s.Last = rec.Time
		}
	}
	return s, sc.Err()
}

// Printer writes audit records: as a table for a person, or as recorded,
// one JSON object a line (compacted, and escaped to printable ASCII). Either
// way no string in a record reaches the terminal raw.
type Printer struct {
	json, denyOnly bool
	out, warn      io.Writer
	tw             *tabwriter.Writer
}

// NewPrinter prints to out; lines that are not records are reported to warn
// and skipped. denyOnly keeps refusals only.
func NewPrinter(out, warn io.Writer, asJSON, denyOnly bool) *Printer {
	p := &Printer{json: asJSON, denyOnly: denyOnly, out: out, warn: warn}
	if !asJSON {
		p.tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	}
	return p
}

// Print prints one record line.
func (p *Printer) Print(line []byte) {
	var rec egress.Record
	if err := json.Unmarshal(line, &rec); err != nil {
		fmt.Fprintf(p.warn, "audit: skipping a line that is not a record: %v\n", err)
		return
	}
	if p.denyOnly && rec.Decision != egress.DecisionDeny {
		return
	}
	if p.json {
		out, err := printableJSON(line)
		if err != nil {
			fmt.Fprintf(p.warn, "audit: skipping a line that is not a record: %v\n", err)
			return
		}
		p.out.Write(append(out, '\n'))
		return
	}
	what := rec.Decision
	if rec.Event == egress.EventClose {
		what = "closed"
	}
	// Every field is shown through Printable: an agent chose the host, and
	// what a reason quotes (an SNI value), so either could draw a fake row.
	target := Printable(rec.Host)
	if rec.Port != 0 {
		target = fmt.Sprintf("%s:%d", target, rec.Port)
	}
	detail := Printable(rec.Reason)
	if rec.Event == egress.EventClose && (rec.BytesUp > 0 || rec.BytesDown > 0) {
		bytes := fmt.Sprintf("up %s, down %s", size(rec.BytesUp), size(rec.BytesDown))
		detail = strings.TrimSuffix(bytes+"; "+detail, "; ")
	}
	fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rec.Time.Local().Format("2006-01-02 15:04:05"), Printable(what), Printable(rec.Method), target, Printable(rec.Rule), detail)
}

// Flush writes out a table's pending rows.
func (p *Printer) Flush() {
	if p.tw != nil {
		p.tw.Flush()
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// followPoll is how often a followed file is checked for new lines.
const followPoll = 300 * time.Millisecond

// Read prints the audit of session in dir. With follow it then prints new
// records as the bottle writes them, until ctx ends.
func Read(ctx context.Context, dir, session string, follow bool, p *Printer) error {
	path := Path(dir, session)
	if path == "" {
		return fmt.Errorf("%q is not a session id", session)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w for session %s in %s", ErrNoAudit, session, dir)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			p.Print(line[:len(line)-1])
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		p.Flush()
		if !follow {
			return nil
		}
		// A partial line waits for the rest of it.
		if _, err := f.Seek(-int64(len(line)), io.SeekCurrent); err != nil {
			return err
		}
		r.Reset(f)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}
