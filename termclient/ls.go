package termclient

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/rpc"
)

// PrintSessions writes the table of `bottle-rpc ls`: a row per session,
// then the reason of each failed one. The agent, commands and errors come
// from manifests and bottles, so each is escaped.
func PrintSessions(w io.Writer, sessions []rpc.SessionInfo) {
	if len(sessions) == 0 {
		fmt.Fprintln(w, "no bottles")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tAGENT\tSTATE\tPERSIST\tATTACHED\tRUNNING")
	for _, s := range sessions {
		persist := "no"
		if s.Persist {
			persist = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Session, auditlog.Printable(s.Agent), s.State, persist, s.Attached, runningExecs(s))
	}
	tw.Flush()
	for _, s := range sessions {
		if s.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", s.Session, auditlog.Printable(s.Error))
		}
	}
}

// runningExecs names a session's running execs and their commands: "-"
// for none. An exec without a terminal is marked: attach cannot show it.
func runningExecs(s rpc.SessionInfo) string {
	var names []string
	for _, e := range s.Execs {
		if !e.Running {
			continue
		}
		name := e.Exec + " " + command(e)
		if !e.Tty {
			name += " (no tty)"
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ", ")
}
