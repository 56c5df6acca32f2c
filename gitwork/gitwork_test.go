package gitwork_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/gitwork"
)

// hostRunner plays the bottle: it runs argv on this machine, the way
// backend.Bottle.Run runs it in the container.
type hostRunner struct {
	// after runs once each command has ended.
	after func()
}

func (h hostRunner) Run(ctx context.Context, argv []string, in io.Reader, out io.Writer) (int, string, error) {
	if h.after != nil {
		defer h.after()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout = in, out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	msg := stderr.String()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return exit.ExitCode(), msg, nil
	}
	return 0, msg, err
}

// git runs git in dir and returns its trimmed stdout.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if exit, ok := err.(*exec.ExitError); ok {
			stderr = exit.Stderr
		}
		t.Fatalf("git %v in %s: %v: %s", args, dir, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// setHome gives git a HOME of its own: an identity, no global config of the
// machine's.
func setHome(t testing.TB) {
	home := t.TempDir()
	write(t, filepath.Join(home, ".gitconfig"), "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
	t.Setenv("HOME", home)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "GIT_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// hostRepo makes the user's repository: three files in one commit, and
// returns it with its HEAD, the base a bottle starts from.
func hostRepo(t testing.TB) (string, string) {
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	for _, f := range []string{"a.txt", "b.txt", "c.txt"} {
		write(t, filepath.Join(dir, f), f+"\n")
	}
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "base")
	return dir, git(t, dir, "rev-parse", "HEAD")
}

// workspace copies the host repository, .git included, as copyGit does.
func workspace(t testing.TB, host string) string {
	ws := filepath.Join(t.TempDir(), "workspace")
	if out, err := exec.Command("cp", "-a", host, ws).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return ws
}

// agentWork: two commits adding new1 and new2, c.txt edited and left
// uncommitted, u.txt untracked.
func agentWork(t testing.TB, ws string) {
	write(t, filepath.Join(ws, "new1.txt"), "one\n")
	git(t, ws, "add", "new1.txt")
	git(t, ws, "commit", "-q", "-m", "first")
	write(t, filepath.Join(ws, "new2.txt"), "two\n")
	git(t, ws, "add", "new2.txt")
	git(t, ws, "commit", "-q", "-m", "second")
	write(t, filepath.Join(ws, "c.txt"), "c.txt\nedited\n")
	write(t, filepath.Join(ws, "u.txt"), "untracked\n")
}

// repoState is everything of a repository a fetch must leave alone: HEAD,
// the index's bytes, the working tree, status, config, the stash. For the
// agent's workspace, refs and objects too.
func repoState(t testing.TB, dir string) map[string]string {
	s := map[string]string{
		"HEAD":   git(t, dir, "rev-parse", "HEAD"),
		"status": git(t, dir, "status", "--porcelain=v2", "--branch", "--untracked-files=all"),
		"stash":  git(t, dir, "stash", "list"),
	}
	for _, f := range []string{".git/HEAD", ".git/index", ".git/config"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		s[f] = string(b)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && rel == ".git" {
			return fs.SkipDir
		}
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s["worktree/"+rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// workspaceState adds what only the bottle's side must keep: its refs and
// the list of its objects.
func workspaceState(t testing.TB, ws string) map[string]string {
	s := repoState(t, ws)
	s["refs"] = git(t, ws, "for-each-ref")
	var objs []string
	filepath.WalkDir(filepath.Join(ws, ".git", "objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			objs = append(objs, p)
		}
		return nil
	})
	s["objects"] = strings.Join(objs, "\n")
	return s
}

func sameState(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s changed:\nbefore %q\nafter  %q", what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared", what, k)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	setHome(t)
	ctx := context.Background()
	host, base := hostRepo(t)
	ws := workspace(t, host)
	agentWork(t, ws)
	// The user keeps working at home: a dirty host repo is fine.
	write(t, filepath.Join(host, "a.txt"), "user's edit\n")
	git(t, host, "add", "a.txt")
	write(t, filepath.Join(host, "b.txt"), "unstaged\n")
	r := hostRunner{}

	hostBefore, wsBefore := repoState(t, host), workspaceState(t, ws)

	head, err := gitwork.Head(ctx, r, ws)
	if err != nil {
		t.Fatal(err)
	}
	if want := git(t, ws, "rev-parse", "HEAD"); head != want {
		t.Errorf("Head = %s, want %s", head, want)
	}

	c, err := gitwork.ReadChanges(ctx, r, ws, base, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Base != base || c.Head != head {
		t.Errorf("base, head = %s, %s; want %s, %s", c.Base, c.Head, base, head)
	}
	var subjects []string
	for _, cm := range c.Commits {
		subjects = append(subjects, cm.Subject)
	}
	if want := []string{"first", "second"}; !reflect.DeepEqual(subjects, want) {
		t.Errorf("commits = %q, want %q", subjects, want)
	}
	wantFiles := []gitwork.File{
		{Path: "c.txt", Status: "modified"},
		{Path: "new1.txt", Status: "added"},
		{Path: "new2.txt", Status: "added"},
		{Path: "u.txt", Status: "untracked"},
	}
	if !reflect.DeepEqual(c.Files, wantFiles) {
		t.Errorf("files = %+v\nwant %+v", c.Files, wantFiles)
	}
	for _, s := range []string{"+edited", "+++ b/u.txt", "+untracked", "+++ b/new1.txt"} {
		if !strings.Contains(c.Diff, s) {
			t.Errorf("diff lacks %q:\n%s", s, c.Diff)
		}
	}
	if c.Truncated {
		t.Error("a small diff is truncated")
	}

	f, err := gitwork.Fetch(ctx, r, ws, base, gitwork.FetchOptions{HostRepo: host, Branch: "bottle/sh/s1", Session: "s1", IncludeUncommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	if f.Branch != "bottle/sh/s1" || f.Base != base || f.Commits != 3 || !f.Uncommitted {
		t.Errorf("fetched = %+v, want the branch with 3 commits, the last uncommitted", f)
	}
	if got := git(t, host, "rev-parse", "refs/heads/bottle/sh/s1"); got != f.Head {
		t.Errorf("branch at %s, Fetched.Head %s", got, f.Head)
	}
	if got := git(t, host, "log", "--format=%s", base+"..bottle/sh/s1"); got != "bottle: uncommitted work\nsecond\nfirst" {
		t.Errorf("branch log:\n%s", got)
	}
	if got := git(t, host, "rev-parse", "bottle/sh/s1~1"); got != head {
		t.Errorf("the uncommitted work's parent is %s, want the agent's HEAD %s", got, head)
	}
	for path, want := range map[string]string{"u.txt": "untracked", "c.txt": "c.txt\nedited", "new2.txt": "two"} {
		if got := git(t, host, "show", "bottle/sh/s1:"+path); got != want {
			t.Errorf("%s on the branch = %q, want %q", path, got, want)
		}
	}
	if got := git(t, host, "for-each-ref", "--format=%(refname)", "refs/bottle/incoming/"); got != "" {
		t.Errorf("temporary refs left: %s", got)
	}

	sameState(t, "host", hostBefore, repoState(t, host))
	sameState(t, "workspace", wsBefore, workspaceState(t, ws))

	// The same work fetched again makes the same commit.
	again, err := gitwork.Fetch(ctx, r, ws, base, gitwork.FetchOptions{HostRepo: host, Branch: "bottle/sh/s1", Session: "s1", IncludeUncommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.Head != f.Head {
		t.Errorf("a second fetch of the same work made %s, the first %s", again.Head, f.Head)
	}
}

// NotFetched after a fetch with the uncommitted work (agentWork's: commits
// first and second, c.txt edited, u.txt untracked): a path edited since
// counts, one left as fetched does not, whichever way it was changed.
func TestNotFetched(t *testing.T) {
	setHome(t)
	ctx := context.Background()
	tests := []struct {
		name           string
		after          func(t *testing.T, ws string)
		commits, files int
	}{
		{"nothing since", func(*testing.T, string) {}, 0, 0},
		{"the uncommitted file edited again", func(t *testing.T, ws string) { write(t, filepath.Join(ws, "c.txt"), "again\n") }, 0, 1},
		{"a committed file edited", func(t *testing.T, ws string) { write(t, filepath.Join(ws, "new1.txt"), "edited\n") }, 0, 1},
		{"a file untouched until now edited", func(t *testing.T, ws string) { write(t, filepath.Join(ws, "a.txt"), "edited\n") }, 0, 1},
		{"a fetched change undone", func(t *testing.T, ws string) { write(t, filepath.Join(ws, "c.txt"), "c.txt\n") }, 0, 1},
		{"the untracked file deleted", func(t *testing.T, ws string) {
			if err := os.Remove(filepath.Join(ws, "u.txt")); err != nil {
				t.Fatal(err)
			}
		}, 0, 1},
		{"a file edited and put back as fetched", func(t *testing.T, ws string) {
			write(t, filepath.Join(ws, "c.txt"), "other\n")
			write(t, filepath.Join(ws, "c.txt"), "c.txt\nedited\n")
		}, 0, 0},
		{"the uncommitted work committed", func(t *testing.T, ws string) {
			git(t, ws, "add", "-A")
			git(t, ws, "commit", "-q", "-m", "third")
		}, 1, 0},
		{"a file renamed: its old path and its new one", func(t *testing.T, ws string) { git(t, ws, "mv", "b.txt", "moved.txt") }, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, base := hostRepo(t)
			ws := workspace(t, host)
			agentWork(t, ws)
			r := hostRunner{}
			f, err := gitwork.Fetch(ctx, r, ws, base, gitwork.FetchOptions{HostRepo: host, Branch: "b", Session: "s1", IncludeUncommitted: true})
			if err != nil {
				t.Fatal(err)
			}
			if want := git(t, host, "rev-parse", f.Head+"^{tree}"); f.Tree != want {
				t.Errorf("Fetched.Tree = %s, want the branch's tree %s", f.Tree, want)
			}
			tt.after(t, ws)
			now, err := gitwork.ReadChanges(ctx, r, ws, base, false)
			if err != nil {
				t.Fatal(err)
			}
			if (now.Tree == f.Tree) != (tt.files == 0) {
				t.Errorf("Changes.Tree %s, Fetched.Tree %s: the same tree is no file changed", now.Tree, f.Tree)
			}
			if commits, files := gitwork.NotFetched(f, now); commits != tt.commits || files != tt.files {
				t.Errorf("NotFetched = %d commits, %d files; want %d, %d", commits, files, tt.commits, tt.files)
			}
		})
	}
}

func TestNoGit(t *testing.T) {
	setHome(t)
	ctx := context.Background()
	host, base := hostRepo(t)
	noGit := t.TempDir()
	write(t, filepath.Join(noGit, "x"), "x\n")
	empty := t.TempDir()
	git(t, empty, "init", "-q")
	for name, ws := range map[string]string{"no .git": noGit, "no commit": empty, "no workspace": filepath.Join(noGit, "gone")} {
		t.Run(name, func(t *testing.T) {
			if _, err := gitwork.Head(ctx, hostRunner{}, ws); !errors.Is(err, gitwork.ErrNoGit) {
				t.Errorf("Head: %v, want ErrNoGit", err)
			}
			if _, err := gitwork.ReadChanges(ctx, hostRunner{}, ws, base, false); !errors.Is(err, gitwork.ErrNoGit) {
				t.Errorf("ReadChanges: %v, want ErrNoGit", err)
			}
			_, err := gitwork.Fetch(ctx, hostRunner{}, ws, base, gitwork.FetchOptions{HostRepo: host, Branch: "b", Session: "s"})
			if !errors.Is(err, gitwork.ErrNoGit) {
				t.Errorf("Fetch: %v, want ErrNoGit", err)
			}
		})
	}
}

// TestFetch: one fetch after what the user and the agent did.
func TestFetch(t *testing.T) {
	setHome(t)
	opts := gitwork.FetchOptions{Branch: "work", Session: "s1", IncludeUncommitted: true}
	fetch := func(t *testing.T, host, ws, base string) (*gitwork.Fetched, error) {
		o := opts
		o.HostRepo = host
		return gitwork.Fetch(context.Background(), hostRunner{}, ws, base, o)
	}
	commit := func(t *testing.T, dir, file, msg string) {
		write(t, filepath.Join(dir, file), msg+"\n")
		git(t, dir, "add", file)
		git(t, dir, "commit", "-q", "-m", msg)
	}
	for _, tc := range []struct {
		name string
		// before runs before the fetch: it may fetch too.
		before      func(t *testing.T, host, ws, base string)
		wantErr     error
		wantCommits int
		wantLog     string // subjects base..work, newest first; "-" for no branch
	}{{
		name:   "branch taken by the user",
		before: func(t *testing.T, host, ws, base string) { agentWork(t, ws); git(t, host, "branch", "work") },
		// the user's branch stays where it was
		wantErr: gitwork.ErrBranchTaken, wantLog: "",
	}, {
		name: "second fetch of the same session updates its branch",
		before: func(t *testing.T, host, ws, base string) {
			agentWork(t, ws)
			if _, err := fetch(t, host, ws, base); err != nil {
				t.Fatal(err)
			}
			commit(t, ws, "c.txt", "third")
		},
		wantCommits: 4, wantLog: "bottle: uncommitted work\nthird\nsecond\nfirst",
	}, {
		name: "branch the user committed on since",
		before: func(t *testing.T, host, ws, base string) {
			agentWork(t, ws)
			if _, err := fetch(t, host, ws, base); err != nil {
				t.Fatal(err)
			}
			git(t, host, "update-ref", "refs/heads/work", "work~1")
		},
		wantErr: gitwork.ErrBranchTaken, wantLog: "second\nfirst",
	}, {
		name: "branch checked out at home",
		before: func(t *testing.T, host, ws, base string) {
			commit(t, ws, "n.txt", "one")
			if _, err := fetch(t, host, ws, base); err != nil {
				t.Fatal(err)
			}
			git(t, host, "checkout", "-q", "work")
			commit(t, ws, "n.txt", "two")
		},
		wantErr: gitwork.ErrBranchTaken, wantLog: "one",
	}, {
		name: "rewritten history",
		before: func(t *testing.T, host, ws, base string) {
			agentWork(t, ws)
			if _, err := fetch(t, host, ws, base); err != nil {
				t.Fatal(err)
			}
			git(t, ws, "reset", "-q", "--hard", base)
			git(t, ws, "clean", "-qfd")
			commit(t, ws, "r.txt", "rewritten")
			git(t, ws, "reflog", "expire", "--expire=now", "--all")
			git(t, ws, "gc", "-q", "--prune=now")
		},
		wantCommits: 1, wantLog: "rewritten",
	}, {
		name: "base gone from the bottle",
		before: func(t *testing.T, host, ws, base string) {
			os.RemoveAll(filepath.Join(ws, ".git"))
			git(t, ws, "init", "-q")
			commit(t, ws, "a.txt", "new history")
		},
		wantErr: gitwork.ErrNoBase, wantLog: "-",
	}, {
		name:    "nothing to fetch",
		before:  func(t *testing.T, host, ws, base string) {},
		wantLog: "-",
	}, {
		name: "behind base",
		before: func(t *testing.T, host, ws, base string) {
			git(t, ws, "reset", "-q", "--hard", "HEAD~1")
		},
		wantCommits: 0, wantLog: "",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			host, _ := hostRepo(t)
			commit(t, host, "a.txt", "second base") // base has a parent
			base := git(t, host, "rev-parse", "HEAD")
			ws := workspace(t, host)
			tc.before(t, host, ws, base)
			hostBefore := repoState(t, host)
			f, err := fetch(t, host, ws, base)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Fetch: %v, want %v", err, tc.wantErr)
			}
			if err == nil && f.Commits != tc.wantCommits {
				t.Errorf("Commits = %d, want %d", f.Commits, tc.wantCommits)
			}
			sameState(t, "host", hostBefore, repoState(t, host))
			if tc.wantLog == "-" {
				if out, _ := exec.Command("git", "-C", host, "rev-parse", "-q", "--verify", "refs/heads/work").Output(); len(out) > 0 {
					t.Errorf("branch work made at %s", out)
				}
				if err == nil && f.Branch != "" {
					t.Errorf("Branch = %q, want none", f.Branch)
				}
				return
			}
			if got := git(t, host, "log", "--format=%s", base+"..work"); got != tc.wantLog {
				t.Errorf("work's log:\n%s\nwant\n%s", got, tc.wantLog)
			}
			if err == nil && git(t, host, "rev-parse", "work") != f.Head {
				t.Errorf("work is not at Fetched.Head %s", f.Head)
			}
		})
	}
}

func TestFetchTooLarge(t *testing.T) {
	setHome(t)
	host, base := hostRepo(t)
	ws := workspace(t, host)
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte(i*7919 + i/251)
	}
	write(t, filepath.Join(ws, "big"), string(big))
	_, err := gitwork.Fetch(context.Background(), hostRunner{}, ws, base,
		gitwork.FetchOptions{HostRepo: host, Branch: "work", Session: "s", IncludeUncommitted: true, MaxBytes: 1 << 10})
	if !errors.Is(err, gitwork.ErrTooLarge) {
		t.Fatalf("Fetch: %v, want ErrTooLarge", err)
	}
	if out, _ := exec.Command("git", "-C", host, "for-each-ref", "refs/heads/work", "refs/bottle/").Output(); len(out) > 0 {
		t.Errorf("refs left: %s", out)
	}
}

func TestReadChangesTruncates(t *testing.T) {
	setHome(t)
	host, base := hostRepo(t)
	ws := workspace(t, host)
	var b strings.Builder
	for b.Len() < 2*gitwork.DiffLimit {
		b.WriteString("a line of the agent's long file\n")
	}
	write(t, filepath.Join(ws, "long.txt"), b.String())
	c, err := gitwork.ReadChanges(context.Background(), hostRunner{}, ws, base, true)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Truncated || len(c.Diff) > gitwork.DiffLimit || !strings.HasSuffix(c.Diff, "\n") {
		t.Errorf("truncated %v, %d bytes: want a diff cut at a line end within %d", c.Truncated, len(c.Diff), gitwork.DiffLimit)
	}
	if !reflect.DeepEqual(c.Files, []gitwork.File{{Path: "long.txt", Status: "untracked"}}) {
		t.Errorf("files = %+v", c.Files)
	}
	if c, err := gitwork.ReadChanges(context.Background(), hostRunner{}, ws, base, false); err != nil || c.Diff != "" {
		t.Errorf("without diff: %v, diff %d bytes", err, len(c.Diff))
	}
}

// TestHostileWorkspace: the workspace's .git/config names an fsmonitor, a
// hooks folder with post-checkout and a clean filter, each leaving a
// marker when run. In the bottle git may run them (the bottle is the
// sandbox); here the bottle is this machine, so the runner removes the
// markers after each of the bottle's commands: a marker seen at the end was
// made by the host's steps.
func TestHostileWorkspace(t *testing.T) {
	setHome(t)
	host, base := hostRepo(t)
	ws := workspace(t, host)
	markers := t.TempDir()
	hooks := filepath.Join(ws, ".git", "hostile-hooks")
	os.MkdirAll(hooks, 0o755)
	script := func(name string) string {
		p := filepath.Join(ws, ".git", name+".sh")
		if err := os.WriteFile(p, []byte("#!/bin/sh\ntouch "+filepath.Join(markers, name)+"\ncat\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hook := filepath.Join(hooks, "post-checkout")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ntouch "+filepath.Join(markers, "post-checkout")+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	agentWork(t, ws)
	git(t, ws, "config", "core.fsmonitor", script("fsmonitor"))
	git(t, ws, "config", "core.hooksPath", hooks)
	git(t, ws, "config", "filter.x.clean", script("clean"))
	git(t, ws, "config", "filter.x.smudge", script("smudge"))
	write(t, filepath.Join(ws, ".gitattributes"), "* filter=x\n")
	git(t, ws, "add", ".gitattributes")
	git(t, ws, "commit", "-q", "-m", "attributes")

	inBottle := map[string]bool{}
	sweep := func() {
		entries, _ := os.ReadDir(markers)
		for _, e := range entries {
			inBottle[e.Name()] = true
			os.Remove(filepath.Join(markers, e.Name()))
		}
	}
	sweep()
	clear(inBottle) // what the test's own git ran above
	r := hostRunner{after: sweep}
	ctx := context.Background()
	if _, err := gitwork.ReadChanges(ctx, r, ws, base, true); err != nil {
		t.Fatal(err)
	}
	f, err := gitwork.Fetch(ctx, r, ws, base, gitwork.FetchOptions{HostRepo: host, Branch: "work", Session: "s", IncludeUncommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	if f.Commits != 4 {
		t.Errorf("Commits = %d, want 4", f.Commits)
	}
	// The setup is live: the bottle's git ran the clean filter.
	if !inBottle["clean"] {
		t.Errorf("the bottle's git never ran the clean filter (ran %v): the test proves nothing", inBottle)
	}
	if entries, _ := os.ReadDir(markers); len(entries) > 0 {
		for _, e := range entries {
			t.Errorf("the host ran the workspace's %s", e.Name())
		}
	}
}

func TestBadOptions(t *testing.T) {
	setHome(t)
	host, base := hostRepo(t)
	ws := workspace(t, host)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		base string
		opts gitwork.FetchOptions
	}{
		{"relative host repo", base, gitwork.FetchOptions{HostRepo: "repo", Branch: "b", Session: "s"}},
		{"host repo without git", base, gitwork.FetchOptions{HostRepo: t.TempDir(), Branch: "b", Session: "s"}},
		{"bad branch", base, gitwork.FetchOptions{HostRepo: host, Branch: "a..b", Session: "s"}},
		{"branch like an option", base, gitwork.FetchOptions{HostRepo: host, Branch: "-f", Session: "s"}},
		{"bad session", base, gitwork.FetchOptions{HostRepo: host, Branch: "b", Session: "a/b"}},
		{"base not an id", "HEAD", gitwork.FetchOptions{HostRepo: host, Branch: "b", Session: "s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := gitwork.Fetch(ctx, hostRunner{}, ws, tc.base, tc.opts); err == nil {
				t.Error("Fetch succeeded")
			}
		})
	}
	unknown := strings.Repeat("ab", 20)
	if _, err := gitwork.Fetch(ctx, hostRunner{}, ws, unknown, gitwork.FetchOptions{HostRepo: host, Branch: "b", Session: "s"}); !errors.Is(err, gitwork.ErrNoBase) {
		t.Errorf("a base the host lacks: %v, want ErrNoBase", err)
	}
}

// BenchmarkFetch1000: Fetch of 1000 commits against what it stands on, run
// by hand: `git bundle create` in the workspace and `git fetch` of it at
// home.
func BenchmarkFetch1000(b *testing.B) {
	setHome(b)
	host, base := hostRepo(b)
	ws := workspace(b, host)
	var imp strings.Builder
	for i := range 1000 {
		data := strings.Repeat("line of commit "+string(rune('a'+i%26))+"\n", 1+i%7)
		imp.WriteString("commit refs/heads/main\ncommitter A <a@b> 1700000000 +0000\ndata 6\ncommit\n")
		if i == 0 {
			imp.WriteString("from " + base + "\n")
		}
		imp.WriteString("M 644 inline f" + string(rune('0'+i%10)) + ".txt\ndata " + itoa(len(data)) + "\n" + data + "\n")
	}
	cmd := exec.Command("git", "-C", ws, "fast-import", "--quiet", "--force")
	cmd.Stdin = strings.NewReader(imp.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("fast-import: %v: %s", err, out)
	}
	git(b, ws, "reset", "-q", "--hard")
	ctx := context.Background()
	b.Run("Fetch", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			n := "s" + itoa(i)
			f, err := gitwork.Fetch(ctx, hostRunner{}, ws, base, gitwork.FetchOptions{HostRepo: host, Branch: n, Session: n, IncludeUncommitted: true})
			if err != nil || f.Commits != 1000 {
				b.Fatalf("%+v, %v", f, err)
			}
		}
	})
	b.Run("by hand", func(b *testing.B) {
		file := filepath.Join(b.TempDir(), "x.bundle")
		for i := 0; b.Loop(); i++ {
			git(b, ws, "bundle", "create", "-q", file, "HEAD", "^"+base)
			git(b, host, "fetch", "-q", "--no-write-fetch-head", file, "HEAD:refs/heads/h"+itoa(i))
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }
