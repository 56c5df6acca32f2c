// Package gitwork reads the agent's git work in a bottle and brings it home
// as a branch of the host repository.
//
// Git runs in two places. In the bottle, through a Runner, it reads the
// workspace and writes a bundle to stdout; what it prints is the agent's
// word and is only parsed, never run. On the host it runs only in the host
// repository (git -C HOSTREPO), on a bundle file: it never opens the
// bottle's repository, so nothing the bottle configures (hooks, fsmonitor,
// filters, aliases, includes) can run on the host.
package gitwork

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Runner runs argv in the bottle, in the workspace, without a terminal:
// stdin from in (nil: none), stdout to out. It returns the exit code and
// the first 4 KiB of stderr. It is what backend.Bottle.Run is.
type Runner interface {
	Run(ctx context.Context, argv []string, in io.Reader, out io.Writer) (code int, stderr string, err error)
}

var (
	// ErrNoGit: the workspace has no git repository (or one without a
	// commit), so there is nothing to compare or fetch.
	ErrNoGit = errors.New("the bottle's workspace has no git repository")
	// ErrNoBase: the commit the bottle started from is gone from the
	// bottle's repository (history rewritten and pruned, or .git replaced)
	// or from the host's. Nothing is fetched: a branch without its base
	// would mix unrelated history into the host repository.
	ErrNoBase = errors.New("the base commit is missing")
	// ErrBranchTaken: the branch exists and bottle did not make it for
	// this session, or it was moved since, or it is checked out.
	ErrBranchTaken = errors.New("the branch is taken")
	// ErrTooLarge: the bundle passed FetchOptions.MaxBytes.
	ErrTooLarge = errors.New("the bundle is too large")
)

// DiffLimit is the most bytes of diff ReadChanges returns.
const DiffLimit = 1 << 20

// uncommittedSubject is the message of the commit that holds the agent's
// uncommitted and untracked work.
const uncommittedSubject = "bottle: uncommitted work"

// Commit is one commit on top of the base.
type Commit struct {
	ID      string
	Subject string
}

// File is one path that differs between the base and the working tree.
type File struct {
	Path string
	// Status is added, modified, deleted, renamed or untracked.
	Status  string
	OldPath string
}

// Changes is what the agent changed since the base.
type Changes struct {
	Base, Head string
	// Commits are base..HEAD, oldest first.
	Commits []Commit
	// Files differ between base and the working tree (committed,
	// uncommitted or untracked; ignored files are left out).
	Files []File
	// Diff is the unified diff of base against the working tree, cut at a
	// line end within DiffLimit when Truncated.
	Diff      string
	Truncated bool
	// Tree is the snapshot's tree: the working tree as `git add -A` sees
	// it, untracked files included.
	Tree string
	// paths holds what each path that differs from base is in Tree (see
	// parseRaw), for NotFetched.
	paths map[string]string
}

// sh runs script in the bottle with args as its positional parameters.
func sh(ctx context.Context, r Runner, script string, args []string, out io.Writer) (int, string, error) {
	argv := append([]string{"sh", "-c", script, "sh"}, args...)
	return r.Run(ctx, argv, nil, out)
}

// scriptErr turns a script's exit code into an error: nil for 0, the
// package's errors for the codes the scripts reserve.
func scriptErr(what, workspace, base string, code int, stderr string) error {
	switch code {
	case 0:
		return nil
	case exitNoGit:
		return fmt.Errorf("%s: %w at %s: start the bottle with copyGit, or copy files out with bottle/cpOut", what, ErrNoGit, workspace)
	case exitNoCommit:
		return fmt.Errorf("%s: %w at %s: it has no commit", what, ErrNoGit, workspace)
	case exitNoBase:
		return fmt.Errorf("%s: %w in the bottle: %s is gone (history rewritten and pruned, or .git replaced); copy the files out with bottle/cpOut", what, ErrNoBase, base)
	}
	return fmt.Errorf("%s: git in the bottle exited %d: %s", what, code, strings.TrimSpace(stderr))
}

// Head returns the workspace's HEAD commit; ErrNoGit when there is none.
func Head(ctx context.Context, r Runner, workspace string) (string, error) {
	var out bytes.Buffer
	code, stderr, err := sh(ctx, r, headScript, []string{workspace}, &out)
	if err != nil {
		return "", fmt.Errorf("read HEAD in the bottle: %w", err)
	}
	if err := scriptErr("read HEAD", workspace, "", code, stderr); err != nil {
		return "", err
	}
	id := strings.TrimSpace(out.String())
	if !isObjectID(id) {
		return "", fmt.Errorf("read HEAD: the bottle answered %q, not a commit id", clip(id))
	}
	return id, nil
}

// ReadChanges lists what the agent changed in workspace since base: its
// commits, every file that differs (untracked included), and with diff the
// unified diff, at most DiffLimit bytes. It changes nothing in the bottle.
func ReadChanges(ctx context.Context, r Runner, workspace, base string, diff bool) (*Changes, error) {
	if !isObjectID(base) {
		return nil, fmt.Errorf("read changes: base %q is not a commit id", clip(base))
	}
	want := "0"
	if diff {
		want = "1"
	}
	var out bytes.Buffer
	code, stderr, err := sh(ctx, r, changesScript, []string{workspace, base, want, strconv.Itoa(DiffLimit + 1)}, &out)
	if err != nil {
		return nil, fmt.Errorf("read changes in the bottle: %w", err)
	}
	if err := scriptErr("read changes", workspace, base, code, stderr); err != nil {
		return nil, err
	}
	sec, err := sections(out.Bytes(), 6)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	c := &Changes{Base: base, Head: strings.TrimSpace(string(sec[0])), Tree: strings.TrimSpace(string(sec[1]))}
	if !isObjectID(c.Head) {
		return nil, fmt.Errorf("read changes: the bottle's HEAD %q is not a commit id", clip(c.Head))
	}
	if !isObjectID(c.Tree) {
		return nil, fmt.Errorf("read changes: the bottle's tree %q is not an object id", clip(c.Tree))
	}
	if c.Commits, err = parseLog(sec[2]); err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	untracked := map[string]bool{}
	for _, p := range nulFields(sec[4]) {
		untracked[p] = true
	}
	if c.Files, c.paths, err = parseRaw(sec[3], untracked); err != nil {
		return nil, fmt.Errorf("read changes: the bottle's %w", err)
	}
	d := sec[5]
	if len(d) > DiffLimit {
		d = d[:DiffLimit]
		if i := bytes.LastIndexByte(d, '\n'); i >= 0 {
			d = d[:i+1]
		}
		c.Truncated = true
	}
	c.Diff = string(d)
	return c, nil
}

// sections splits the script's output: n times a decimal length on a line
// of its own and then that many bytes.
func sections(b []byte, n int) ([][]byte, error) {
	out := make([][]byte, 0, n)
	for range n {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, errors.New("the bottle's answer is cut short")
		}
		size, err := strconv.Atoi(strings.TrimSpace(string(b[:i])))
		if err != nil || size < 0 || size > len(b)-i-1 {
			return nil, fmt.Errorf("the bottle's answer is malformed near %q", clip(string(b[:i])))
		}
		out = append(out, b[i+1:i+1+size])
		b = b[i+1+size:]
	}
	return out, nil
}

// nulFields splits NUL-terminated fields.
func nulFields(b []byte) []string {
	f := strings.Split(string(b), "\x00")
	if len(f) > 0 && f[len(f)-1] == "" {
		f = f[:len(f)-1]
	}
	return f
}

// parseLog reads `git log -z --format=%H%x00%s`: ID and subject alternate.
func parseLog(b []byte) ([]Commit, error) {
	f := nulFields(b)
	if len(f)%2 != 0 {
		return nil, errors.New("the bottle's commit list is malformed")
	}
	commits := make([]Commit, 0, len(f)/2)
	for i := 0; i < len(f); i += 2 {
		id := f[i]
		if !isObjectID(id) {
			return nil, fmt.Errorf("the bottle's commit list holds %q, not a commit id", clip(id))
		}
		commits = append(commits, Commit{ID: id, Subject: f[i+1]})
	}
	return commits, nil
}

// pathDeleted is parseRaw's state for a path the second tree lacks.
const pathDeleted = "deleted"

// parseRaw reads `git diff-tree -r -z --raw`: a field ":SRCMODE DSTMODE
// SRCID DSTID STATUS", then one path, or two (old, new) for a rename or
// copy. It returns the files, and the path states: for every path that
// differs, "DSTMODE DSTID" or pathDeleted (the old path of a rename too),
// which are the same whether or not renames were detected.
func parseRaw(b []byte, untracked map[string]bool) ([]File, map[string]string, error) {
	f := nulFields(b)
	files := []File{}
	states := map[string]string{}
	for i := 0; i < len(f); {
		meta := strings.Fields(strings.TrimPrefix(f[i], ":"))
		if !strings.HasPrefix(f[i], ":") || len(meta) != 5 || !isObjectID(meta[3]) {
			return nil, nil, errors.New("file list is malformed")
		}
		st := meta[4]
		paths := 1
		if st[0] == 'R' || st[0] == 'C' {
			paths = 2
		}
		if i+paths >= len(f) {
			return nil, nil, errors.New("file list is cut short")
		}
		file := File{Path: f[i+paths]}
		states[file.Path] = meta[1] + " " + meta[3]
		switch st[0] {
		case 'A', 'C':
			file.Status = "added"
			if untracked[file.Path] {
				file.Status = "untracked"
			}
		case 'D':
			file.Status = "deleted"
			states[file.Path] = pathDeleted
		case 'R':
			file.Status, file.OldPath = "renamed", f[i+1]
			states[file.OldPath] = pathDeleted
		default: // M, T (type change)
			file.Status = "modified"
		}
		files = append(files, file)
		i += paths + 1
	}
	return files, states, nil
}

// isObjectID: a full SHA-1 or SHA-256 object name in lower-case hex.
func isObjectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// clip shortens what the bottle said before it goes into an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
