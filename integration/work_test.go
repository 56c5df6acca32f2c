package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/rpc"
)

// hostGit runs git in dir on the host, with no user or system config, and
// returns its output.
func hostGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@test", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hostRepo makes a git repository with a.txt, b.txt and c.txt in one
// commit.
func hostRepo(t testing.TB) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	hostGit(t, filepath.Dir(repo), "init", "-q", repo)
	for _, f := range []string{"a.txt", "b.txt", "c.txt"} {
		if err := os.WriteFile(filepath.Join(repo, f), []byte(f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hostGit(t, repo, "add", ".")
	hostGit(t, repo, "commit", "-q", "-m", "start")
	return repo
}

// inBottle runs script with bash in the bottle, without a terminal, and
// fails unless it exits 0.
func (e *editor) inBottle(session, script string) string {
	e.t.Helper()
	ex := e.exec(session, false, "bash", "-ec", script)
	if exit := e.waitExit(ex); exit.Code != 0 {
		e.t.Fatalf("in the bottle: %s\nexit %+v, output:\n%s", script, exit, e.output(ex))
	}
	return e.output(ex)
}

// repoState is what the user sees of a repository, byte for byte: HEAD,
// the index file, every file of the working tree, and git status (run
// without taking locks, so that it does not refresh the index itself).
func repoState(t *testing.T, repo string) string {
	t.Helper()
	var b strings.Builder
	head, err := os.ReadFile(filepath.Join(repo, ".git", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(repo, ".git", "index"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(index)
	fmt.Fprintf(&b, "HEAD %s", head)
	fmt.Fprintf(&b, "rev %s", hostGit(t, repo, "rev-parse", "HEAD"))
	fmt.Fprintf(&b, "index %s\n", hex.EncodeToString(sum[:]))
	err = filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "file %s %q\n", strings.TrimPrefix(p, repo), data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "status\n%s", hostGit(t, repo, "--no-optional-locks", "status", "--porcelain=v2", "--branch", "--untracked-files=all"))
	fmt.Fprintf(&b, "stash %s", hostGit(t, repo, "stash", "list"))
	config, err := os.ReadFile(filepath.Join(repo, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "config %q\n", config)
	return b.String()
}

// The agent's work comes home from a gVisor bottle: changes lists it,
// fetch makes a branch without touching anything else of the host
// repository, cpOut reads files the agent just wrote, and nothing the
// bottle's repository configures runs on the host.
func TestWorkComesHome(t *testing.T) {
	repo := hostRepo(t)
	base := strings.TrimSpace(hostGit(t, repo, "rev-parse", "HEAD"))
	e := newEditor(t)
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runsc"), Cwd: repo, CopyGit: true})
	if started.Runtime != "runsc" {
		t.Fatalf("runtime %s, want runsc", started.Runtime)
	}
	// Meanwhile the user works on the host: none of it is touched.
	if err := os.WriteFile(filepath.Join(repo, "a.txt"), []byte("the user's edit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "mine.txt"), []byte("the user's file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostGit(t, repo, "add", "mine.txt")
	sess, ws := started.Session, started.Workspace

	e.inBottle(sess, `cd `+ws+`
g() { git -c user.name=agent -c user.email=agent@bottle "$@"; }
echo one > a.txt; g commit -q -am one
echo two > new.txt; g add new.txt; g commit -q -m two
echo edited > b.txt
echo fresh > untracked.txt`)

	var ch rpc.ChangesResult
	e.call(rpc.MethodChanges, rpc.ChangesParams{Session: sess, Diff: true}, &ch)
	got := map[string]string{}
	for _, f := range ch.Files {
		got[f.Path] = f.Status
	}
	want := map[string]string{"a.txt": "modified", "new.txt": "added", "b.txt": "modified", "untracked.txt": "untracked"}
	if ch.Base != base || len(ch.Commits) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("changes: base %s commits %+v files %v; want base %s, 2 commits, files %v", ch.Base, ch.Commits, got, base, want)
	}
	if !strings.Contains(ch.Diff, "+fresh") {
		t.Errorf("changes: the diff has not the untracked file:\n%s", ch.Diff)
	}

	before := repoState(t, repo)
	var f rpc.FetchResult
	e.call(rpc.MethodFetch, rpc.FetchParams{Session: sess}, &f)
	branch := "bottle/sh/" + sess
	if f.Branch != branch || f.Commits != 3 || !f.Uncommitted || f.Base != base {
		t.Errorf("fetch = %+v, want %s with 3 commits, the last the uncommitted work", f, branch)
	}
	if log := hostGit(t, repo, "log", "--format=%s", branch); log != "bottle: uncommitted work\ntwo\none\nstart\n" {
		t.Errorf("the branch's log on the host:\n%s", log)
	}
	if got := hostGit(t, repo, "show", branch+":untracked.txt"); got != "fresh\n" {
		t.Errorf("untracked.txt on the branch = %q", got)
	}
	if after := repoState(t, repo); after != before {
		t.Errorf("the fetch changed the host repository:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// cpOut reads through the sandbox: a file the agent has just written,
	// which the engine's archive endpoint does not see under gVisor.
	e.inBottle(sess, `cd `+ws+`; echo "written just now" > just-now.txt; ln -s /etc/shadow shadow`)
	out := t.TempDir()
	var cp rpc.CpOutResult
	e.call(rpc.MethodCpOut, rpc.CpOutParams{Session: sess, ContainerPath: ws + "/just-now.txt", HostPath: filepath.Join(out, "just-now.txt")}, &cp)
	if data, err := os.ReadFile(filepath.Join(out, "just-now.txt")); err != nil || string(data) != "written just now\n" || cp.Bytes != int64(len(data)) {
		t.Errorf("cpOut of a new file: %q, %v, bytes %d", data, err, cp.Bytes)
	}
	e.call(rpc.MethodCpOut, rpc.CpOutParams{Session: sess, ContainerPath: ws + "/shadow", HostPath: filepath.Join(out, "shadow")}, &cp)
	if target, err := os.Readlink(filepath.Join(out, "shadow")); err != nil || target != "/etc/shadow" || cp.Bytes != 0 {
		t.Errorf("cpOut of a link to /etc/shadow: %q, %v, bytes %d; want the link itself", target, err, cp.Bytes)
	}
	e.call(rpc.MethodCpOut, rpc.CpOutParams{Session: sess, ContainerPath: ws, HostPath: filepath.Join(out, "ws")}, &cp)
	if data, err := os.ReadFile(filepath.Join(out, "ws", "new.txt")); err != nil || string(data) != "two\n" {
		t.Errorf("cpOut of the workspace: new.txt = %q, %v", data, err)
	}
	var missing rpc.CpOutResult
	err := e.try(rpc.MethodCpOut, rpc.CpOutParams{Session: sess, ContainerPath: ws + "/none", HostPath: filepath.Join(out, "none")}, &missing)
	if rerr := wantCode(t, err, rpc.CodeInvalidParams); !strings.Contains(string(*rerr.Data), `"field":"containerPath"`) {
		t.Errorf("cpOut of a missing path: %v %s, want field containerPath", rerr, *rerr.Data)
	}

	// A hostile repository: each of these writes a marker if it runs. In
	// the bottle they may run (git is the agent's); on the host none may.
	markers := t.TempDir()
	hostile := fmt.Sprintf(`cd %[1]s
git config core.fsmonitor "touch %[2]s/fsmonitor; false"
git config filter.x.clean "touch %[2]s/filter; cat"
git config filter.x.smudge "touch %[2]s/smudge; cat"
git config alias.fetch "!touch %[2]s/alias"
echo '* filter=x' > .gitattributes
mkdir -p .git/hooks
for h in post-checkout post-merge reference-transaction pre-auto-gc post-rewrite; do
	printf '#!/bin/sh\ntouch %[2]s/%%s\n' $h > .git/hooks/$h; chmod +x .git/hooks/$h
done
echo more > c.txt`, ws, markers)
	e.inBottle(sess, hostile)
	e.call(rpc.MethodChanges, rpc.ChangesParams{Session: sess, Diff: true}, &ch)
	e.call(rpc.MethodFetch, rpc.FetchParams{Session: sess}, &f)
	if f.Branch != branch || !f.Uncommitted {
		t.Errorf("second fetch = %+v", f)
	}
	if got := hostGit(t, repo, "show", branch+":c.txt"); got != "more\n" {
		t.Errorf("c.txt on the branch after the second fetch = %q", got)
	}
	if left, _ := os.ReadDir(markers); len(left) > 0 {
		t.Errorf("the bottle's repository ran something on the host: markers %v", left)
	}
	if after := repoState(t, repo); after != before {
		t.Errorf("the second fetch changed the host repository:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Work done after the last fetch is reported by the close.
	e.inBottle(sess, `cd `+ws+`; git -c core.hooksPath=/dev/null -c user.name=agent -c user.email=agent@bottle commit -q -m three -- c.txt`)
	var closed rpc.CloseResult
	e.call(rpc.MethodClose, rpc.CloseParams{Session: sess}, &closed)
	if closed.Unfetched == nil || closed.Unfetched.Commits != 1 {
		t.Errorf("close's unfetched = %+v, want the commit made after the fetch", closed.Unfetched)
	}
	assertGone(t, sess)
	if branches := strings.Fields(hostGit(t, repo, "branch", "--format=%(refname:short)")); !slices.Contains(branches, branch) {
		t.Errorf("host branches %v, want %s among them", branches, branch)
	}
}

// A bottle started without copyGit has no history: changes and fetch say
// so and point to cpOut, and the close reports nothing unfetched.
func TestWorkWithoutGit(t *testing.T) {
	repo := hostRepo(t)
	e := newEditor(t)
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(t, "runsc"), Cwd: repo})
	for _, method := range []string{rpc.MethodChanges, rpc.MethodFetch} {
		err := e.try(method, map[string]string{"session": started.Session}, nil)
		rerr := wantCode(t, err, rpc.CodeInvalidParams)
		if data := string(*rerr.Data); !strings.Contains(data, `"kind":"noGit"`) || !strings.Contains(data, "bottle/cpOut") {
			t.Errorf("%s without copyGit: %s", method, data)
		}
	}
	var closed rpc.CloseResult
	e.call(rpc.MethodClose, rpc.CloseParams{Session: started.Session}, &closed)
	if closed.Unfetched != nil {
		t.Errorf("close without git: unfetched %+v", closed.Unfetched)
	}
	assertGone(t, started.Session)
}
