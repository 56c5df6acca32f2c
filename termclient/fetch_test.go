package termclient

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/rpc"
)

func TestRunFetchesTheAgentsWorkWhenItExits(t *testing.T) {
	repo := t.TempDir() // not the test's working folder: the hint names it
	branch := "bottle/claude/0000abcd"
	hint, _ := json.Marshal(rpc.ErrorData{Kind: "internal", Hint: "delete or rename the branch, then run again"})
	hintData := json.RawMessage(hint)
	tests := []struct {
		name     string
		opts     Options
		srv      *fakeServer
		typed    string // with Persist: what the user types
		fetch    bool   // bottle/fetch is sent, after the agent exited and before bottle/close
		closed   bool
		code     int
		printed  []string
		unwanted []string
	}{
		{
			name: "commits and uncommitted work", opts: Options{CopyGit: true},
			srv:   &fakeServer{fetched: rpc.FetchResult{Branch: branch, Head: "c0ffee", Base: "bad", Commits: 3, Uncommitted: true}},
			fetch: true, closed: true, code: 7,
			printed: []string{
				"fetch:    when the agent exits, its work becomes branch bottle/claude/SESSION of " + repo + " (--no-fetch: not)\n",
				"bottle: fetched 2 commits and uncommitted work into branch " + branch + " (git -C " + repo + " log " + branch + ")\r\n",
			},
		},
		{
			name: "nothing changed", opts: Options{CopyGit: true},
			srv:   &fakeServer{fetched: rpc.FetchResult{Base: "bad", Head: "bad"}},
			fetch: true, closed: true, code: 7,
			printed: []string{"bottle: nothing to fetch: the agent changed nothing\r\n"},
		},
		{
			name: "a failed fetch still closes the bottle and keeps the agent's code", opts: Options{CopyGit: true},
			srv: &fakeServer{
				fetchErr:  &jsonrpc2.Error{Code: jsonrpc2.InternalError, Message: "branch " + branch + " exists and bottle did not make it", Data: &hintData},
				unfetched: &rpc.Unfetched{Commits: 1, Files: 3},
			},
			fetch: true, closed: true, code: 7,
			printed: []string{
				"bottle: could not fetch the agent's work: bottle/fetch: branch " + branch + " exists and bottle did not make it\r\n",
				"bottle: delete or rename the branch, then run again\r\n",
				"bottle: 0000abcd closed with work not fetched: 1 commit and 3 changed files\r\n",
			},
		},
		{
			name: "--no-fetch leaves the work, and close says so", opts: Options{CopyGit: true, NoFetch: true},
			srv:    &fakeServer{unfetched: &rpc.Unfetched{Commits: 2, Files: 1}},
			closed: true, code: 7,
			printed:  []string{"bottle: 0000abcd closed with work not fetched: 2 commits and 1 changed file\r\n"},
			unwanted: []string{"fetch:", "fetching"},
		},
		{
			name: "without --git there is nothing to fetch", opts: Options{},
			srv:    &fakeServer{},
			closed: true, code: 7,
			unwanted: []string{"fetch:", "fetching", "not fetched"},
		},
		{
			name: "a server without bottle/fetch is found out before the start", opts: Options{CopyGit: true},
			srv:    &fakeServer{oldServer: true},
			closed: true, code: 7,
			printed:  []string{"fetch:    no: this server cannot fetch"},
			unwanted: []string{"fetching"},
		},
		{
			name: "persist: the agent's exit fetches", opts: Options{CopyGit: true, Persist: true},
			srv:   &fakeServer{fetched: rpc.FetchResult{Branch: branch, Commits: 1}},
			fetch: true, closed: true, code: 7,
			printed: []string{"bottle: fetched 1 commit into branch " + branch},
		},
		{
			name: "persist: a detach fetches nothing", opts: Options{CopyGit: true, Persist: true},
			srv:   &fakeServer{keepRunning: true, fetched: rpc.FetchResult{Branch: branch, Commits: 1}},
			typed: "\x10\x11", code: 0,
			unwanted: []string{"fetching"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			in, typed := pipeInput(t)
			if _, err := typed.WriteString(tt.typed); err != nil {
				t.Fatal(err)
			}
			var errOut bytes.Buffer
			opts := tt.opts
			opts.Agent, opts.Cwd, opts.Yes = "claude", repo, true
			opts.Terminal = Terminal{In: in, Out: &bytes.Buffer{}, Err: &errOut}
			code, err := Run(ctx, pipeTo(t, ctx, tt.srv.serve), opts)
			if err != nil || code != tt.code {
				t.Fatalf("Run = %d, %v; want %d; printed:\n%s", code, err, tt.code, errOut.String())
			}
			calls, _ := tt.srv.seen()
			tt.srv.mu.Lock()
			fetches := slices.Clone(tt.srv.fetch)
			tt.srv.mu.Unlock()
			f, c := slices.Index(calls, rpc.MethodFetch), slices.Index(calls, rpc.MethodClose)
			if (f >= 0) != tt.fetch || (c >= 0) != tt.closed {
				t.Errorf("calls %v: want fetch %v, close %v", calls, tt.fetch, tt.closed)
			}
			if tt.fetch {
				if e := slices.Index(calls, rpc.MethodExec); f < e || c >= 0 && c < f {
					t.Errorf("bottle/fetch is not between bottle/exec and bottle/close: %v", calls)
				}
				// The server's defaults: its branch name, uncommitted work included.
				if want := (rpc.FetchParams{Session: "0000abcd"}); len(fetches) != 1 || fetches[0] != want {
					t.Errorf("bottle/fetch got %+v, want one call with %+v", fetches, want)
				}
			}
			for _, want := range tt.printed {
				if !strings.Contains(errOut.String(), want) {
					t.Errorf("missing %q in:\n%s", want, errOut.String())
				}
			}
			for _, bad := range tt.unwanted {
				if strings.Contains(errOut.String(), bad) {
					t.Errorf("unwanted %q in:\n%s", bad, errOut.String())
				}
			}
		})
	}
}

func TestFetchedLine(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		res  rpc.FetchResult
		repo string
		want string
	}{
		{"one commit, run from the repository", rpc.FetchResult{Branch: "bottle/claude/1a2b3c4d", Commits: 1}, wd,
			"fetched 1 commit into branch bottle/claude/1a2b3c4d (git log bottle/claude/1a2b3c4d)"},
		{"only uncommitted work", rpc.FetchResult{Branch: "bottle/claude/1a2b3c4d", Commits: 1, Uncommitted: true}, wd,
			"fetched uncommitted work into branch bottle/claude/1a2b3c4d (git log bottle/claude/1a2b3c4d)"},
		{"a repository with a space", rpc.FetchResult{Branch: "b", Commits: 3}, "/home/u/my repo",
			"fetched 3 commits into branch b (git -C '/home/u/my repo' log b)"},
		// git allows these in a branch name; a pasted command must not run them.
		{"a branch a shell would read", rpc.FetchResult{Branch: "bottle/$(touch x)'y/1", Commits: 1}, wd,
			`fetched 1 commit into branch bottle/$(touch x)'y/1 (git log 'bottle/$(touch x)'"'"'y/1')`},
		{"a branch shown escaped gets no command", rpc.FetchResult{Branch: "b\x1b[2K", Commits: 1}, wd,
			`fetched 1 commit into branch "b\x1b[2K"`},
		{"nothing", rpc.FetchResult{}, wd, "nothing to fetch: the agent changed nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fetchedLine(tt.res, tt.repo); got != tt.want {
				t.Errorf("fetchedLine = %q\nwant           %q", got, tt.want)
			}
		})
	}
}

func TestFetchTextReachesTheTerminalEscaped(t *testing.T) {
	line := fetchedLine(rpc.FetchResult{Branch: hostile, Commits: 1}, "/r")
	checkOneEscapedLine(t, line+"\n")
}
