package termclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/rpc"
)

// fetching says whether run brings the agent's work home when it exits:
// only a bottle given the folder's .git has a base to fetch from.
func (o *Options) fetching() bool { return o.CopyGit && !o.NoFetch }

// printFetchPlan tells the user, before they agree to start, where the
// agent's work will land, or why it will not: a server without
// bottle/fetch (a daemon an older bottle-rpc started) is found out now,
// not after an hour of work.
func printFetchPlan(w io.Writer, agent, repo string, methods []string) bool {
	if !slices.Contains(methods, rpc.MethodFetch) {
		fmt.Fprintln(w, "fetch:    no: this server cannot fetch (a daemon started by an older bottle-rpc? it exits after 15 idle minutes); the agent's work will be lost when it exits")
		return false
	}
	fmt.Fprintf(w, "fetch:    when the agent exits, its work becomes branch bottle/%s/SESSION of %s (--no-fetch: not)\n", auditlog.Printable(agent), auditlog.Printable(repo))
	return true
}

// fetchWork brings the agent's commits and uncommitted work into the host
// repository as a branch, with the server's defaults, and says what came.
// A failure is printed, not returned: the bottle is closed either way, and
// the exit code stays the agent's.
func (c *client) fetchWork(ctx context.Context, session, repo string) {
	fmt.Fprintf(c.term.Err, "\r\nbottle: fetching the agent's work...\r\n")
	var res rpc.FetchResult
	if err := c.call(ctx, rpc.MethodFetch, rpc.FetchParams{Session: session}, &res); err != nil {
		fmt.Fprintf(c.term.Err, "bottle: could not fetch the agent's work: %s\r\n", auditlog.Printable(err.Error()))
		if hint := errorHint(err); hint != "" {
			fmt.Fprintf(c.term.Err, "bottle: %s\r\n", auditlog.Printable(hint))
		}
		return
	}
	fmt.Fprintf(c.term.Err, "bottle: %s\r\n", fetchedLine(res, repo))
}

// fetchedLine says what a fetch brought home and how to look at it. The
// branch is quoted for a shell when git allows it characters a shell
// reads: a manifest names the agent, and the agent is in the branch.
func fetchedLine(res rpc.FetchResult, repo string) string {
	if res.Branch == "" {
		return "nothing to fetch: the agent changed nothing"
	}
	// The wire's count includes the commit that holds the uncommitted
	// work; the user wants the agent's own.
	commits := res.Commits
	if res.Uncommitted {
		commits = max(commits-1, 0)
	}
	var what []string
	switch commits {
	case 0:
	case 1:
		what = append(what, "1 commit")
	default:
		what = append(what, fmt.Sprintf("%d commits", commits))
	}
	if res.Uncommitted {
		what = append(what, "uncommitted work")
	}
	if len(what) == 0 {
		what = append(what, "no new commits")
	}
	line := fmt.Sprintf("fetched %s into branch %s", strings.Join(what, " and "), auditlog.Printable(res.Branch))
	git := "git"
	if wd, err := os.Getwd(); repo != "" && (err != nil || wd != repo) {
		git = "git -C " + shellQuote(repo)
	}
	// A command shown escaped would not run as shown: none then.
	if cmd := git + " log " + shellQuote(res.Branch); auditlog.Printable(cmd) == cmd {
		line += " (" + cmd + ")"
	}
	return line
}

// closeSession closes the bottle and says what work it took with it.
func (c *client) closeSession(ctx context.Context, session string) {
	var res rpc.CloseResult
	if err := c.call(context.WithoutCancel(ctx), rpc.MethodClose, rpc.CloseParams{Session: session}, &res); err != nil {
		fmt.Fprintf(c.term.Err, "bottle: %s\r\n", auditlog.Printable(err.Error()))
		return
	}
	c.sayUnfetched(session, res.Unfetched)
}

// sayUnfetched says what work a closed bottle took with it, if any.
func (c *client) sayUnfetched(session string, u *rpc.Unfetched) {
	if u != nil {
		fmt.Fprintf(c.term.Err, "bottle: %s closed with work not fetched: %s and %s\r\n", session, count(u.Commits, "commit"), count(u.Files, "changed file"))
	}
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// errorHint is the server's data.hint of a failed call: what to do next.
func errorHint(err error) string {
	var rpcErr *jsonrpc2.Error
	if !errors.As(err, &rpcErr) || rpcErr.Data == nil {
		return ""
	}
	var data rpc.ErrorData
	if json.Unmarshal(*rpcErr.Data, &data) != nil {
		return ""
	}
	return data.Hint
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._/@%+=:,-]+$`)

// shellQuote makes s one word for a POSIX shell, with no backslash in it
// (auditlog.Printable would quote it again).
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
