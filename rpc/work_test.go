package rpc_test

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/rpc"
)

// workBackend is the fake backend with a real workspace: its bottles' Run
// runs on the host in the folder workspace, so that git and tar do what
// they do in a bottle.
type workBackend struct {
	*fakeBackend
	workspace string
}

func (b workBackend) Start(ctx context.Context, spec backend.StartSpec, progress backend.Progress) (backend.Bottle, error) {
	bt, err := b.fakeBackend.Start(ctx, spec, progress)
	if err != nil {
		return nil, err
	}
	fb := bt.(*fakeBottle)
	fb.info.Workspace = b.workspace
	return fb, nil
}

// newWorkHarness is newHarness on a workBackend whose workspace is
// workspace.
func newWorkHarness(t *testing.T, workspace string) *harness {
	t.Helper()
	be := &fakeBackend{}
	h := newHarnessOn(t, be, workBackend{be, workspace}, rpc.Options{})
	h.initialize()
	return h
}

// git runs git in dir, as a user with a name, and returns its output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@test", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gitPair makes a host repository with one commit and the bottle's
// workspace as a clone of it: what copyGit gives the agent.
func gitPair(t *testing.T) (host, workspace string) {
	t.Helper()
	root := t.TempDir()
	host, workspace = filepath.Join(root, "host"), filepath.Join(root, "workspace")
	git(t, root, "init", "-q", host)
	for _, f := range []string{"a.txt", "b.txt", "c.txt"} {
		writeFile(t, filepath.Join(host, f), f+"\n")
	}
	git(t, host, "add", ".")
	git(t, host, "commit", "-q", "-m", "start")
	git(t, root, "clone", "-q", host, workspace)
	return host, workspace
}

func TestCpOutBadParamsNameTheirField(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "there")
	writeFile(t, existing, "x")
	h := newWorkHarness(t, dir)
	var started rpc.StartResult
	h.client.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude"}, &started)
	sess := started.Session

	tests := []struct {
		name   string
		params rpc.CpOutParams
		code   int
		field  string
	}{
		{"no session", rpc.CpOutParams{ContainerPath: "/w/x", HostPath: filepath.Join(dir, "y")}, -32602, "session"},
		{"no container path", rpc.CpOutParams{Session: sess, HostPath: filepath.Join(dir, "y")}, -32602, "containerPath"},
		{"relative container path", rpc.CpOutParams{Session: sess, ContainerPath: "w/x", HostPath: filepath.Join(dir, "y")}, -32602, "containerPath"},
		{"container path /", rpc.CpOutParams{Session: sess, ContainerPath: "/w/..", HostPath: filepath.Join(dir, "y")}, -32602, "containerPath"},
		{"no host path", rpc.CpOutParams{Session: sess, ContainerPath: "/w/x"}, -32602, "hostPath"},
		{"relative host path", rpc.CpOutParams{Session: sess, ContainerPath: "/w/x", HostPath: "y"}, -32602, "hostPath"},
		{"host path /", rpc.CpOutParams{Session: sess, ContainerPath: "/w/x", HostPath: "/"}, -32602, "hostPath"},
		{"no parent", rpc.CpOutParams{Session: sess, ContainerPath: "/w/x", HostPath: filepath.Join(dir, "none", "y")}, -32602, "hostPath"},
		{"parent is a file", rpc.CpOutParams{Session: sess, ContainerPath: "/w/x", HostPath: filepath.Join(existing, "y")}, -32602, "hostPath"},
		{"exists", rpc.CpOutParams{Session: sess, ContainerPath: "/w/x", HostPath: existing}, -32602, "hostPath"},
		{"negative limit", rpc.CpOutParams{Session: sess, ContainerPath: "/w/x", HostPath: filepath.Join(dir, "y"), MaxBytes: -1}, -32602, "maxBytes"},
		{"missing in the bottle", rpc.CpOutParams{Session: sess, ContainerPath: filepath.Join(dir, "none"), HostPath: filepath.Join(dir, "y")}, -32602, "containerPath"},
		{"unknown session", rpc.CpOutParams{Session: "deadbeef", ContainerPath: "/w/x", HostPath: filepath.Join(dir, "y")}, -32101, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := h.client.callErr(rpc.MethodCpOut, tt.params)
			if e.Code != tt.code || e.Data.Field != tt.field || e.Data.Hint == "" {
				t.Errorf("error %d field %q hint %q (%s), want %d field %q and a hint", e.Code, e.Data.Field, e.Data.Hint, e.Message, tt.code, tt.field)
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(dir, "y")); err == nil {
		t.Errorf("a failed copy left %s", filepath.Join(dir, "y"))
	}
}

func TestCpOutCopiesWhatTheBottleHas(t *testing.T) {
	ws := t.TempDir()
	writeFile(t, filepath.Join(ws, "out", "one.txt"), "12345")
	writeFile(t, filepath.Join(ws, "out", "sub", "two.txt"), "123")
	if err := os.Symlink("/etc/shadow", filepath.Join(ws, "out", "secret")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ws, "big"), strings.Repeat("x", 4096))
	h := newWorkHarness(t, ws)
	var started rpc.StartResult
	h.client.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude"}, &started)
	sess := started.Session
	dest := filepath.Join(t.TempDir(), "copy")

	var res rpc.CpOutResult
	h.client.mustCall(rpc.MethodCpOut, rpc.CpOutParams{Session: sess, ContainerPath: filepath.Join(ws, "out"), HostPath: dest}, &res)
	if res.Bytes != 8 {
		t.Errorf("bytes = %d, want 8", res.Bytes)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "sub", "two.txt")); err != nil || string(b) != "123" {
		t.Errorf("sub/two.txt = %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "secret")); err != nil || target != "/etc/shadow" {
		t.Errorf("the symlink came out as %q, %v; want a link to /etc/shadow", target, err)
	}

	e := h.client.callErr(rpc.MethodCpOut, rpc.CpOutParams{Session: sess, ContainerPath: filepath.Join(ws, "out"), HostPath: dest})
	if e.Code != -32602 || e.Data.Field != "hostPath" {
		t.Errorf("copy onto an existing folder without overwrite: %d field %q, want -32602 hostPath", e.Code, e.Data.Field)
	}
	writeFile(t, filepath.Join(ws, "out", "one.txt"), "changed")
	h.client.mustCall(rpc.MethodCpOut, rpc.CpOutParams{Session: sess, ContainerPath: filepath.Join(ws, "out"), HostPath: dest, Overwrite: true}, &res)
	if b, _ := os.ReadFile(filepath.Join(dest, "one.txt")); string(b) != "changed" {
		t.Errorf("overwrite left one.txt = %q", b)
	}

	tooBig := filepath.Join(t.TempDir(), "big")
	e = h.client.callErr(rpc.MethodCpOut, rpc.CpOutParams{Session: sess, ContainerPath: filepath.Join(ws, "big"), HostPath: tooBig, MaxBytes: 1024})
	if e.Code != -32602 || e.Data.Field != "maxBytes" {
		t.Errorf("a copy past maxBytes: %d field %q (%s), want -32602 maxBytes", e.Code, e.Data.Field, e.Message)
	}
	if left, _ := os.ReadDir(filepath.Dir(tooBig)); len(left) != 0 {
		t.Errorf("a copy past maxBytes left %v", left)
	}
}

func TestChangesFetchAndUnfetched(t *testing.T) {
	host, ws := gitPair(t)
	h := newWorkHarness(t, ws)
	var started rpc.StartResult
	h.client.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude", Cwd: host, CopyGit: true}, &started)
	sess := started.Session
	base := strings.TrimSpace(git(t, ws, "rev-parse", "HEAD"))

	// The agent commits two files, edits a third and adds an untracked one.
	writeFile(t, filepath.Join(ws, "a.txt"), "a changed\n")
	git(t, ws, "commit", "-q", "-am", "one")
	writeFile(t, filepath.Join(ws, "new.txt"), "new\n")
	git(t, ws, "add", "new.txt")
	git(t, ws, "commit", "-q", "-m", "two")
	writeFile(t, filepath.Join(ws, "b.txt"), "b changed\n")
	writeFile(t, filepath.Join(ws, "untracked.txt"), "u\n")

	var ch rpc.ChangesResult
	h.client.mustCall(rpc.MethodChanges, rpc.ChangesParams{Session: sess, Diff: true}, &ch)
	if ch.Base != base || len(ch.Commits) != 2 || ch.Commits[0].Subject != "one" || ch.Commits[1].Subject != "two" {
		t.Errorf("changes: base %s commits %+v, want base %s and commits one, two", ch.Base, ch.Commits, base)
	}
	got := map[string]string{}
	for _, f := range ch.Files {
		got[f.Path] = f.Status
	}
	want := map[string]string{"a.txt": "modified", "new.txt": "added", "b.txt": "modified", "untracked.txt": "untracked"}
	if !maps.Equal(got, want) {
		t.Errorf("changes: files %v, want %v", got, want)
	}
	if !strings.Contains(ch.Diff, "+b changed") || ch.Truncated {
		t.Errorf("changes: diff %q truncated %v", ch.Diff, ch.Truncated)
	}

	e := h.client.callErr(rpc.MethodFetch, rpc.FetchParams{Session: sess, Branch: "bad..name"})
	if e.Code != -32602 || e.Data.Field != "branch" {
		t.Errorf("fetch to a bad branch name: %d field %q, want -32602 branch", e.Code, e.Data.Field)
	}
	git(t, host, "branch", "taken")
	e = h.client.callErr(rpc.MethodFetch, rpc.FetchParams{Session: sess, Branch: "taken"})
	if e.Code != -32602 || e.Data.Field != "branch" {
		t.Errorf("fetch to a branch bottle did not make: %d field %q (%s), want -32602 branch", e.Code, e.Data.Field, e.Message)
	}

	var f rpc.FetchResult
	h.client.mustCall(rpc.MethodFetch, rpc.FetchParams{Session: sess}, &f)
	if f.Branch != "bottle/claude/"+sess || f.Commits != 3 || !f.Uncommitted || f.Base != base {
		t.Errorf("fetch = %+v, want branch bottle/claude/%s with 3 commits, the last uncommitted work", f, sess)
	}
	if log := git(t, host, "log", "--format=%s", f.Branch); log != "bottle: uncommitted work\ntwo\none\nstart\n" {
		t.Errorf("the branch's log:\n%s", log)
	}

	// After more work the close says what was not fetched: one commit,
	// the file it changed, and a file changed since the fetch.
	writeFile(t, filepath.Join(ws, "c.txt"), "c changed\n")
	git(t, ws, "commit", "-q", "-m", "three", "c.txt")
	writeFile(t, filepath.Join(ws, "untracked.txt"), "u changed\n")
	var closed rpc.CloseResult
	h.client.mustCall(rpc.MethodClose, rpc.CloseParams{Session: sess}, &closed)
	if closed.Unfetched == nil || *closed.Unfetched != (rpc.Unfetched{Commits: 1, Files: 2}) {
		t.Errorf("close's unfetched = %+v, want 1 commit and 2 files", closed.Unfetched)
	}
}

func TestCloseAfterFetchingEverythingReportsNothing(t *testing.T) {
	tests := []struct {
		name  string
		fetch *bool // includeUncommitted; nil: no fetch
		want  *rpc.Unfetched
	}{
		{"nothing fetched", nil, &rpc.Unfetched{Commits: 1, Files: 2}},
		{"everything fetched", new(true), nil},
		{"commits fetched", new(false), &rpc.Unfetched{Files: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, ws := gitPair(t)
			h := newWorkHarness(t, ws)
			var started rpc.StartResult
			h.client.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude", Cwd: host, CopyGit: true}, &started)
			writeFile(t, filepath.Join(ws, "a.txt"), "a changed\n")
			git(t, ws, "commit", "-q", "-am", "one")
			writeFile(t, filepath.Join(ws, "b.txt"), "b changed\n")
			if tt.fetch != nil {
				h.client.mustCall(rpc.MethodFetch, rpc.FetchParams{Session: started.Session, IncludeUncommitted: tt.fetch}, nil)
			}
			var closed rpc.CloseResult
			h.client.mustCall(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, &closed)
			if (closed.Unfetched == nil) != (tt.want == nil) || closed.Unfetched != nil && *closed.Unfetched != *tt.want {
				t.Errorf("unfetched = %+v, want %+v", closed.Unfetched, tt.want)
			}
		})
	}
}

// After a fetch with the uncommitted work, close counts a file edited
// since as unfetched, and the files left as fetched not.
func TestCloseCountsOnlyWhatChangedSinceTheFetch(t *testing.T) {
	tests := []struct {
		name  string
		after func(t *testing.T, ws string)
		want  *rpc.Unfetched
	}{
		{"nothing edited", func(*testing.T, string) {}, nil},
		{"the fetched uncommitted file edited", func(t *testing.T, ws string) { writeFile(t, filepath.Join(ws, "b.txt"), "b again\n") }, &rpc.Unfetched{Files: 1}},
		{"a file not changed before edited", func(t *testing.T, ws string) { writeFile(t, filepath.Join(ws, "c.txt"), "c changed\n") }, &rpc.Unfetched{Files: 1}},
		{"the fetched change undone", func(t *testing.T, ws string) { writeFile(t, filepath.Join(ws, "b.txt"), "b.txt\n") }, &rpc.Unfetched{Files: 1}},
		{"the uncommitted work committed as fetched", func(t *testing.T, ws string) { git(t, ws, "commit", "-q", "-am", "two") }, &rpc.Unfetched{Commits: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, ws := gitPair(t)
			h := newWorkHarness(t, ws)
			var started rpc.StartResult
			h.client.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude", Cwd: host, CopyGit: true}, &started)
			writeFile(t, filepath.Join(ws, "a.txt"), "a changed\n")
			git(t, ws, "commit", "-q", "-am", "one")
			writeFile(t, filepath.Join(ws, "b.txt"), "b changed\n")
			var f rpc.FetchResult
			h.client.mustCall(rpc.MethodFetch, rpc.FetchParams{Session: started.Session}, &f)
			if f.Commits != 2 || !f.Uncommitted {
				t.Fatalf("fetch = %+v, want 2 commits, the last the uncommitted work", f)
			}
			tt.after(t, ws)
			var closed rpc.CloseResult
			h.client.mustCall(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, &closed)
			if (closed.Unfetched == nil) != (tt.want == nil) || closed.Unfetched != nil && *closed.Unfetched != *tt.want {
				t.Errorf("unfetched = %+v, want %+v", closed.Unfetched, tt.want)
			}
		})
	}
}

func TestWithoutCopyGitChangesAndFetchSayNoGit(t *testing.T) {
	host, ws := gitPair(t)
	h := newWorkHarness(t, ws)
	var started rpc.StartResult
	h.client.mustCall(rpc.MethodStart, rpc.StartParams{Agent: "claude", Cwd: host}, &started)
	for _, method := range []string{rpc.MethodChanges, rpc.MethodFetch} {
		e := h.client.callErr(method, map[string]string{"session": started.Session})
		checkError(t, method, e, -32602, rpc.KindNoGit)
		if !strings.Contains(e.Data.Hint, "bottle/cpOut") {
			t.Errorf("%s: hint %q does not point to bottle/cpOut", method, e.Data.Hint)
		}
	}
	var closed rpc.CloseResult
	h.client.mustCall(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, &closed)
	if closed.Unfetched != nil {
		t.Errorf("a session without git closed with unfetched %+v", closed.Unfetched)
	}
	if branches := git(t, host, "branch", "--format=%(refname)"); !slices.Equal(strings.Fields(branches), []string{"refs/heads/main"}) {
		t.Errorf("host branches: %s", branches)
	}
}
