package gitwork

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DefaultMaxBytes is the largest bundle Fetch takes when
// FetchOptions.MaxBytes is 0: 1 GiB.
const DefaultMaxBytes = 1 << 30

// FetchOptions say where the agent's work lands.
type FetchOptions struct {
	// HostRepo is the absolute path of the host repository (its working
	// tree or its git folder).
	HostRepo string
	// Branch is the branch made or updated, without refs/heads/.
	Branch string
	// Session names the session: a branch is updated only by the session
	// that made it.
	Session string
	// IncludeUncommitted adds one commit on top of HEAD holding the
	// working tree's uncommitted and untracked files, when there are any.
	IncludeUncommitted bool
	// MaxBytes bounds the bundle (0: DefaultMaxBytes).
	MaxBytes int64
}

// Fetched is what Fetch brought home. Head and Commits are read from the
// host repository after the fetch, not taken from the bottle's word.
type Fetched struct {
	// Branch is empty when there was nothing to fetch.
	Branch, Head, Base string
	// Commits on the branch that are not in base.
	Commits int
	// Uncommitted: the branch's last commit holds the uncommitted work.
	Uncommitted bool
	// Tree is Head's tree: with Uncommitted the snapshot of the working
	// tree, otherwise HEAD's. Empty when nothing was fetched.
	Tree string
	// commits are the ids of the Commits; with Uncommitted, paths holds
	// what each path that differs from Base is in Tree (see parseRaw).
	// NotFetched compares them with the workspace's changes.
	commits map[string]bool
	paths   map[string]string
}

// ownerRefs is where Fetch records the branches it made:
// refs/bottle/sessions/SESSION/heads/BRANCH points at the commit it last
// wrote to BRANCH for SESSION. An existing branch is bottle's to update only
// when that ref exists and equals it; a user who commits on the branch (or
// resets it) takes it over, and the next fetch refuses with ErrBranchTaken
// instead of throwing the user's commits away. The refs stay after the
// session: `git for-each-ref refs/bottle/` lists them, `git update-ref -d`
// drops one.
const ownerRefs = "refs/bottle/sessions/"

// Fetch brings the agent's commits since base home as opts.Branch of
// opts.HostRepo: a bundle made in the bottle (with IncludeUncommitted, one
// more commit on top for the uncommitted and untracked work, made without
// touching the agent's index, worktree, refs or objects) is copied to a host
// temp file through the Runner's stdout, checked with `git bundle verify`,
// fetched into a temporary ref, and only then the branch is moved, in one
// ref transaction that fails if the branch or its owner ref moved meanwhile.
// The host's HEAD, index, working tree, stash and config are never touched
// and nothing is checked out. A failure leaves the branch as it was.
func Fetch(ctx context.Context, r Runner, workspace, base string, opts FetchOptions) (*Fetched, error) {
	if !isObjectID(base) {
		return nil, fmt.Errorf("fetch: base %q is not a commit id", clip(base))
	}
	if !filepath.IsAbs(opts.HostRepo) {
		return nil, fmt.Errorf("fetch: the host repository %q is not an absolute path", opts.HostRepo)
	}
	if err := checkSession(opts.Session); err != nil {
		return nil, err
	}
	h := hostGit{dir: opts.HostRepo}
	if _, err := h.run(ctx, "rev-parse", "--git-dir"); err != nil {
		return nil, fmt.Errorf("fetch: %s is not a git repository: %w", opts.HostRepo, err)
	}
	branchRef := "refs/heads/" + opts.Branch
	ownerRef := ownerRefs + opts.Session + "/heads/" + opts.Branch
	if strings.HasPrefix(opts.Branch, "-") || !h.ok(ctx, "check-ref-format", ownerRef) || !h.ok(ctx, "check-ref-format", branchRef) {
		return nil, fmt.Errorf("fetch: %q is not a valid branch name (see git check-ref-format)", opts.Branch)
	}
	if !h.ok(ctx, "cat-file", "-e", base+"^{commit}") {
		return nil, fmt.Errorf("fetch: %w in the host repository %s: %s; copy the files out with bottle/cpOut", ErrNoBase, opts.HostRepo, base)
	}
	// Checked before the bottle's work so that a taken branch fails fast;
	// the ref transaction checks the same again at the end.
	oldBranch, oldOwner, err := claim(ctx, h, branchRef, ownerRef, len(base))
	if err != nil {
		return nil, err
	}

	file, err := os.CreateTemp("", "bottle-fetch-*.bundle")
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	defer os.Remove(file.Name())
	defer file.Close()
	limit := opts.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	lw := &limitWriter{w: file, left: limit, cancel: cancel}
	include := "0"
	if opts.IncludeUncommitted {
		include = "1"
	}
	code, stderr, err := sh(runCtx, r, fetchScript, []string{workspace, base, include}, lw)
	if lw.over {
		return nil, fmt.Errorf("fetch: %w: more than %d bytes; fetch without the uncommitted work, or copy large files out with bottle/cpOut", ErrTooLarge, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch: make the bundle in the bottle: %w", err)
	}
	if err := file.Close(); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}

	var tip, incoming string
	switch code {
	case exitNothing:
		return &Fetched{Head: base, Base: base}, nil
	case exitBehind:
		// The agent reset below base: no new objects, the branch points at
		// a commit the host must already have.
		b, err := os.ReadFile(file.Name())
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		tip = strings.TrimSpace(string(b))
		if !isObjectID(tip) || !h.ok(ctx, "cat-file", "-e", tip+"^{commit}") {
			return nil, fmt.Errorf("fetch: the bottle's HEAD %q is behind base but not in the host repository", clip(tip))
		}
	default:
		if err := scriptErr("fetch", workspace, base, code, stderr); err != nil {
			return nil, err
		}
		if tip, incoming, err = fetchBundle(ctx, h, file.Name(), opts.Session); err != nil {
			return nil, err
		}
	}

	// One transaction: both refs move and the temporary ref goes, or
	// nothing changes (another fetch or the user moved the branch since
	// claim).
	var tx strings.Builder
	fmt.Fprintf(&tx, "update %s %s %s\n", branchRef, tip, oldBranch)
	fmt.Fprintf(&tx, "update %s %s %s\n", ownerRef, tip, oldOwner)
	if incoming != "" {
		fmt.Fprintf(&tx, "delete %s\n", incoming)
	}
	if _, err := h.runIn(ctx, strings.NewReader(tx.String()), "update-ref", "-m", "bottle fetch "+opts.Session, "--stdin"); err != nil {
		if incoming != "" {
			// Best effort: a leftover is only a ref under refs/bottle/incoming/.
			h.run(context.WithoutCancel(ctx), "update-ref", "-d", incoming)
		}
		return nil, fmt.Errorf("fetch: %w: %s moved while fetching: %v", ErrBranchTaken, opts.Branch, err)
	}

	list, err := h.run(ctx, "rev-list", base+".."+tip)
	if err != nil {
		return nil, fmt.Errorf("fetch: list the commits: %w", err)
	}
	f := &Fetched{Branch: opts.Branch, Head: tip, Base: base, commits: map[string]bool{}}
	for _, id := range strings.Fields(list) {
		f.commits[id] = true
	}
	f.Commits = len(f.commits)
	commit, err := h.run(ctx, "cat-file", "commit", tip)
	if err != nil {
		return nil, fmt.Errorf("fetch: read %s: %w", tip, err)
	}
	f.Uncommitted = isUncommittedCommit(commit)
	first, _, _ := strings.Cut(commit, "\n")
	if f.Tree, _ = strings.CutPrefix(first, "tree "); !isObjectID(f.Tree) {
		return nil, fmt.Errorf("fetch: %s names no tree", tip)
	}
	if f.Uncommitted {
		// The snapshot's objects are only here: the bottle made them in a
		// temporary object store, gone with the fetch.
		raw, err := h.run(ctx, "diff-tree", "-r", "-z", "--raw", "--no-abbrev", "--no-renames", base, tip)
		if err != nil {
			return nil, fmt.Errorf("fetch: list the files fetched: %w", err)
		}
		if _, f.paths, err = parseRaw([]byte(raw), nil); err != nil {
			return nil, fmt.Errorf("fetch: the host's %w", err)
		}
	}
	return f, nil
}

// NotFetched counts the work in now that the fetch f, one with the
// uncommitted work (f.Uncommitted), did not bring home; now is read
// against f.Base. Commits: those of now that f did not fetch. Files: the
// paths whose content (object and mode) in now's snapshot is not the one
// in f's tree, a path changed back to base included, since the branch
// still has the change: `git diff-tree --name-only` of the two trees,
// which no one repository holds (f's is only in the host's, now's only in
// the bottle's), so it is worked out from each tree's paths that differ
// from base. After a fetch without the uncommitted work, read the changes
// since f.Head instead: that commit is in the bottle.
func NotFetched(f *Fetched, now *Changes) (commits, files int) {
	for _, c := range now.Commits {
		if !f.commits[c.ID] {
			commits++
		}
	}
	if f.Tree == now.Tree {
		return commits, 0
	}
	for p, st := range now.paths {
		if f.paths[p] != st {
			files++
		}
	}
	for p := range f.paths {
		if _, ok := now.paths[p]; !ok {
			files++
		}
	}
	return commits, files
}

// claim returns the old values the ref transaction expects: the branch's
// and its owner ref's commits, or the zero id for "must not exist". A
// branch that exists is ours only if the owner ref points at it and no
// worktree has it checked out (moving it would change what HEAD is).
func claim(ctx context.Context, h hostGit, branchRef, ownerRef string, idLen int) (oldBranch, oldOwner string, err error) {
	zero := strings.Repeat("0", idLen)
	branch := h.resolve(ctx, branchRef)
	owner := h.resolve(ctx, ownerRef)
	name := strings.TrimPrefix(branchRef, "refs/heads/")
	if branch == "" {
		if owner == "" {
			owner = zero
		}
		return zero, owner, nil
	}
	if owner != branch {
		return "", "", fmt.Errorf("fetch: %w: %s exists and bottle did not make it for this session, or it moved since; pass another branch name", ErrBranchTaken, name)
	}
	wt, err := h.run(ctx, "worktree", "list", "--porcelain")
	if err != nil {
		return "", "", fmt.Errorf("fetch: list worktrees: %w", err)
	}
	for _, line := range strings.Split(wt, "\n") {
		if line == "branch "+branchRef {
			return "", "", fmt.Errorf("fetch: %w: %s is checked out; switch to another branch first, or pass another branch name", ErrBranchTaken, name)
		}
	}
	return branch, owner, nil
}

// fetchBundle verifies the bundle, fetches its one ref into a temporary
// ref (fetch checks that every object the ref needs is there) and returns
// the commit and the temporary ref, which the caller deletes in its ref
// transaction (it is deleted here when the fetch fails).
func fetchBundle(ctx context.Context, h hostGit, bundle, session string) (tip, incoming string, err error) {
	if _, err := h.run(ctx, "bundle", "verify", "-q", bundle); err != nil {
		return "", "", fmt.Errorf("fetch: the bottle's bundle does not verify: %w", err)
	}
	if tip, err = bundleTip(bundle); err != nil {
		return "", "", fmt.Errorf("fetch: the bottle's bundle: %w", err)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", "", fmt.Errorf("fetch: %w", err)
	}
	incoming = "refs/bottle/incoming/" + session + "-" + hex.EncodeToString(rnd[:])
	// fsckObjects: the objects come from the agent and the user may check
	// them out; fetch refuses malformed ones (paths like .git/hooks).
	if _, err := h.run(ctx, "-c", "fetch.fsckObjects=true", "fetch", "--quiet", "--no-write-fetch-head", "--no-tags",
		"--no-auto-gc", "--no-recurse-submodules", bundle, "+refs/bottle/tip:"+incoming); err != nil {
		// Best effort: a leftover is only a ref under refs/bottle/incoming/.
		h.run(context.WithoutCancel(ctx), "update-ref", "-d", incoming)
		return "", "", fmt.Errorf("fetch: fetch the bottle's bundle: %w", err)
	}
	return tip, incoming, nil
}

// bundleTip reads the bundle's header (a v2 or v3 bundle: capabilities,
// prerequisites, then refs, then an empty line) and returns the commit of
// its one ref, which must be refs/bottle/tip.
func bundleTip(bundle string) (string, error) {
	f, err := os.Open(bundle)
	if err != nil {
		return "", err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	first, err := br.ReadString('\n')
	if err != nil || (first != "# v2 git bundle\n" && first != "# v3 git bundle\n") {
		return "", fmt.Errorf("not a git bundle (%q)", clip(first))
	}
	var tip string
	for refs := 0; ; {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", errors.New("its header is cut short")
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if refs != 1 || tip == "" {
				return "", errors.New("it does not hold exactly one ref refs/bottle/tip")
			}
			return tip, nil
		case line[0] == '-' || line[0] == '@':
			continue
		}
		refs++
		if id, ref, _ := strings.Cut(line, " "); ref == "refs/bottle/tip" && isObjectID(id) {
			tip = id
		}
	}
}

// isUncommittedCommit: the commit is one the fetch script made for the
// uncommitted work (its committer and subject; the agent could forge one,
// which only mislabels its own commit).
func isUncommittedCommit(raw string) bool {
	header, msg, _ := strings.Cut(raw, "\n\n")
	subject, _, _ := strings.Cut(msg, "\n")
	if subject != uncommittedSubject {
		return false
	}
	for _, line := range strings.Split(header, "\n") {
		if strings.HasPrefix(line, "committer bottle <bottle@localhost> ") {
			return true
		}
	}
	return false
}

// checkSession: a session id becomes a ref path component.
func checkSession(s string) error {
	if s == "" || s[0] == '.' || strings.HasSuffix(s, ".lock") || strings.Contains(s, "..") {
		return fmt.Errorf("fetch: session %q cannot name a ref", s)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("fetch: session %q cannot name a ref", s)
		}
	}
	return nil
}

// limitWriter writes at most left bytes, then cancels the bottle's command.
type limitWriter struct {
	w      *os.File
	left   int64
	over   bool
	cancel context.CancelFunc
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.over = true
		l.cancel()
		return 0, ErrTooLarge
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// hostGit runs git in the host repository only. Its environment drops
// every GIT_* variable the server inherited (GIT_DIR, GIT_INDEX_FILE,
// GIT_CONFIG_* ... would point it elsewhere) and never prompts.
type hostGit struct{ dir string }

func (h hostGit) run(ctx context.Context, args ...string) (string, error) {
	return h.runIn(ctx, nil, args...)
}

func (h hostGit) runIn(ctx context.Context, in *strings.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", h.dir}, args...)...)
	cmd.Env = hostEnv()
	if in != nil {
		cmd.Stdin = in
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			return out.String(), fmt.Errorf("git %s: %s: %w", args[0], msg, err)
		}
		return out.String(), fmt.Errorf("git %s: %w", args[0], err)
	}
	return out.String(), nil
}

// ok runs a git command whose exit code is the answer.
func (h hostGit) ok(ctx context.Context, args ...string) bool {
	_, err := h.run(ctx, args...)
	return err == nil
}

// resolve returns the commit ref points at, "" when it does not exist.
func (h hostGit) resolve(ctx context.Context, ref string) string {
	out, err := h.run(ctx, "rev-parse", "--verify", "-q", ref+"^{commit}")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func hostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_TERMINAL_PROMPT=0")
}
