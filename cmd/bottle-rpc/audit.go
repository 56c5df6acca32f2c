package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/egress"
)

const auditUsage = `usage: bottle-rpc audit [FLAGS] [SESSION]

Without SESSION, lists the sessions whose egress audit is kept. With it,
prints that session's egress decisions, one per line (--json: as recorded).

`

// audit prints the egress audit that the server keeps for each bottle (one
// JSON line per decision of its sidecar, also streamed to clients as
// bottle/egress).
func audit(ctx context.Context, args []string) int {
	flags := flag.NewFlagSet("audit", flag.ExitOnError)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), auditUsage)
		flags.PrintDefaults()
	}
	asJSON := flags.Bool("json", false, "print the records as recorded, one JSON object per line")
	denied := flags.Bool("deny", false, "only refusals")
	follow := flags.Bool("follow", false, "keep printing new records until interrupted")
	dir := flags.String("dir", dockerbottle.DefaultAuditDir(), "audit folder")
	flags.Parse(args)
	var session string
	if flags.NArg() > 0 {
		session = flags.Arg(0)
		flags.Parse(flags.Args()[1:]) // flags may follow the session
		if flags.NArg() > 0 {
			return fail("audit: one session at a time (got %q too)", flags.Args())
		}
	}
	if session == "" {
		return listAudits(*dir)
	}
	path := dockerbottle.AuditPath(*dir, session)
	if path == "" {
		return fail("audit: %q is not a session id", session)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("audit: no audit for session %s in %s (bottle-rpc audit lists the sessions there)", session, *dir)
	}
	if err != nil {
		return fail("audit: %v", err)
	}
	defer f.Close()
	p := &auditPrinter{json: *asJSON, denied: *denied, out: os.Stdout}
	if !p.json {
		p.tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			p.print(line)
			continue
		}
		if err != nil && err != io.EOF {
			return fail("audit: %v", err)
		}
		p.flush()
		if !*follow {
			return 0
		}
		// A partial line waits for the rest of it.
		if _, serr := f.Seek(-int64(len(line)), io.SeekCurrent); serr != nil {
			return fail("audit: %v", serr)
		}
		r.Reset(f)
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(300 * time.Millisecond):
		}
	}
}

type auditPrinter struct {
	json, denied bool
	out          io.Writer
	tw           *tabwriter.Writer
}

func (p *auditPrinter) print(line []byte) {
	var rec egress.Record
	if err := json.Unmarshal(line, &rec); err != nil {
		fmt.Fprintf(os.Stderr, "bottle-rpc: audit: skipping a line that is not a record: %v\n", err)
		return
	}
	if p.denied && rec.Decision != "deny" {
		return
	}
	if p.json {
		p.out.Write(line)
		return
	}
	what := rec.Decision
	if rec.Event == "close" {
		what = "closed"
	}
	target := rec.Host
	if rec.Port != 0 {
		target = fmt.Sprintf("%s:%d", rec.Host, rec.Port)
	}
	detail := rec.Reason
	if rec.Event == "close" && (rec.BytesUp > 0 || rec.BytesDown > 0) {
		bytes := fmt.Sprintf("up %s, down %s", size(rec.BytesUp), size(rec.BytesDown))
		detail = strings.TrimSuffix(bytes+"; "+detail, "; ")
	}
	fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rec.Time.Local().Format("2006-01-02 15:04:05"), what, rec.Method, target, rec.Rule, detail)
}

func (p *auditPrinter) flush() {
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

// listAudits prints the sessions that have an audit file, newest first,
// with their decision and refusal counts.
func listAudits(dir string) int {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Printf("no audits in %s yet\n", dir)
		return 0
	}
	if err != nil {
		return fail("audit: %v", err)
	}
	type row struct {
		session           string
		last              time.Time
		decisions, denies int
	}
	var rows []row
	for _, de := range entries {
		session, ok := strings.CutSuffix(de.Name(), ".jsonl")
		if !ok || !de.Type().IsRegular() {
			continue
		}
		r := row{session: session}
		f, err := os.Open(filepath.Join(dir, de.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec egress.Record
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				continue
			}
			if rec.Event == "decision" {
				r.decisions++
			}
			if rec.Decision == "deny" {
				r.denies++
			}
			if rec.Time.After(r.last) {
				r.last = rec.Time
			}
		}
		f.Close()
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		fmt.Printf("no audits in %s yet\n", dir)
		return 0
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].last.After(rows[j].last) })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tLAST\tDECISIONS\tREFUSED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", r.session, r.last.Local().Format("2006-01-02 15:04:05"), r.decisions, r.denies)
	}
	tw.Flush()
	return 0
}
