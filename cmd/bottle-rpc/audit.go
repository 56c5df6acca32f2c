package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/bottle-dev/bottle/auditlog"
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
	dir := flags.String("dir", auditlog.DefaultDir(), "audit folder")
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
	p := auditlog.NewPrinter(os.Stdout, os.Stderr, *asJSON, *denied)
	err := auditlog.Read(ctx, *dir, session, *follow, p)
	if errors.Is(err, auditlog.ErrNoAudit) {
		return fail("audit: %v (bottle-rpc audit lists the sessions there)", err)
	}
	if err != nil {
		return fail("audit: %v", err)
	}
	return 0
}

func listAudits(dir string) int {
	sessions, err := auditlog.List(dir)
	if err != nil {
		return fail("audit: %v", err)
	}
	if len(sessions) == 0 {
		fmt.Printf("no audits in %s yet\n", dir)
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tLAST\tDECISIONS\tREFUSED")
	for _, s := range sessions {
		// A session is named by its file's name, which anything could have made.
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", auditlog.Printable(s.Session), s.Last.Local().Format("2006-01-02 15:04:05"), s.Decisions, s.Refused)
	}
	tw.Flush()
	return 0
}
