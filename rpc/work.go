package rpc

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bottle-dev/bottle/gitwork"
	"github.com/bottle-dev/bottle/hostcopy"
)

// cpOut checks the paths before anything runs in the bottle; hostcopy
// checks every entry of what comes out.
func (c *conn) cpOut(ctx context.Context, p *CpOutParams) (*CpOutResult, error) {
	if p.Session == "" {
		return nil, invalidParams("session", "give the session id from bottle/start", "session is required")
	}
	if p.ContainerPath == "" {
		return nil, invalidParams("containerPath", "give the absolute path in the bottle of the file or folder to copy", "containerPath is required")
	}
	if !path.IsAbs(p.ContainerPath) {
		return nil, invalidParams("containerPath", "give an absolute path in the bottle, like WORKSPACE/notes.md (the workspace is in bottle/start's result)",
			"containerPath %q is not an absolute path", p.ContainerPath)
	}
	from := path.Clean(p.ContainerPath)
	if from == "/" {
		return nil, invalidParams("containerPath", "name a file or folder in the bottle, like WORKSPACE (the workspace is in bottle/start's result)",
			"containerPath must name a file or folder, not /")
	}
	if p.HostPath == "" {
		return nil, invalidParams("hostPath", "give the absolute host path the copy becomes", "hostPath is required")
	}
	if !filepath.IsAbs(p.HostPath) {
		return nil, invalidParams("hostPath", "give an absolute host path", "hostPath %q is not an absolute path", p.HostPath)
	}
	to := filepath.Clean(p.HostPath)
	if to == "/" {
		return nil, invalidParams("hostPath", "name the file or folder the copy becomes, like /home/me/out", "hostPath must name a file or folder, not /")
	}
	if fi, err := os.Stat(filepath.Dir(to)); err != nil || !fi.IsDir() {
		return nil, invalidParams("hostPath", "make the folder hostPath goes into first, or pick a path in an existing folder",
			"hostPath %q: its parent %s is not an existing folder", p.HostPath, filepath.Dir(to))
	}
	if _, err := os.Lstat(to); err == nil && !p.Overwrite {
		return nil, invalidParams("hostPath", "pass overwrite: true to replace it, or pick a path that does not exist",
			"hostPath %q exists", p.HostPath)
	}
	if p.MaxBytes < 0 {
		return nil, invalidParams("maxBytes", "give a positive limit in bytes, or leave it out for 1 GiB", "maxBytes must not be negative, got %d", p.MaxBytes)
	}
	sess, err := c.reg.Get(p.Session)
	if err != nil {
		return nil, err
	}
	n, err := sess.CopyOut(ctx, from, to, hostcopy.Options{Overwrite: p.Overwrite, MaxBytes: p.MaxBytes})
	if err != nil {
		return nil, err
	}
	return &CpOutResult{Bytes: n}, nil
}

func (c *conn) changes(ctx context.Context, p *ChangesParams) (*ChangesResult, error) {
	if p.Session == "" {
		return nil, invalidParams("session", "give the session id from bottle/start", "session is required")
	}
	sess, err := c.reg.Get(p.Session)
	if err != nil {
		return nil, err
	}
	ch, err := sess.Changes(ctx, p.Diff)
	if err != nil {
		return nil, err
	}
	return changesResult(ch), nil
}

// changesResult puts gitwork's changes on the wire; empty lists are [].
func changesResult(ch *gitwork.Changes) *ChangesResult {
	res := &ChangesResult{
		Base:      ch.Base,
		Head:      ch.Head,
		Commits:   make([]CommitInfo, 0, len(ch.Commits)),
		Files:     make([]FileChange, 0, len(ch.Files)),
		Diff:      ch.Diff,
		Truncated: ch.Truncated,
	}
	for _, cm := range ch.Commits {
		res.Commits = append(res.Commits, CommitInfo{ID: cm.ID, Subject: cm.Subject})
	}
	for _, f := range ch.Files {
		res.Files = append(res.Files, FileChange{Path: f.Path, Status: f.Status, OldPath: f.OldPath})
	}
	return res
}

func (c *conn) fetch(ctx context.Context, p *FetchParams) (*FetchResult, error) {
	if p.Session == "" {
		return nil, invalidParams("session", "give the session id from bottle/start", "session is required")
	}
	if p.Branch != "" && !validBranch(p.Branch) {
		return nil, invalidParams("branch", "give a branch name git accepts (see git check-ref-format), like bottle/review, or leave it out for bottle/AGENT/SESSION",
			"branch %q is not a valid branch name", p.Branch)
	}
	sess, err := c.reg.Get(p.Session)
	if err != nil {
		return nil, err
	}
	f, err := sess.Fetch(ctx, p.Branch, p.IncludeUncommitted == nil || *p.IncludeUncommitted)
	if err != nil {
		return nil, err
	}
	return &FetchResult{Branch: f.Branch, Head: f.Head, Base: f.Base, Commits: f.Commits, Uncommitted: f.Uncommitted}, nil
}

// validBranch applies git check-ref-format's rules to refs/heads/NAME, so
// that a bad name is the client's error before anything runs.
func validBranch(name string) bool {
	if name == "@" || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") ||
		strings.Contains(name, "..") || strings.Contains(name, "@{") || strings.Contains(name, "//") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || strings.HasPrefix(c, ".") || strings.HasSuffix(c, ".lock") {
			return false
		}
	}
	return true
}
