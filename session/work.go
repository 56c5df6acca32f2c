package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/gitwork"
	"github.com/bottle-dev/bottle/hostcopy"
)

// unfetchedTimeout bounds the look at the bottle's repository that Close
// takes before teardown: a bottle too busy to answer is closed anyway,
// without a count.
const unfetchedTimeout = 10 * time.Second

// drainLimit is how much of tar's output CopyOut still reads after the
// extraction failed on its own, to get tar's exit rather than a broken
// pipe: a failed tar writes a short end of archive.
const drainLimit = 1 << 20

// work is what a session needs to bring the agent's work home. It is
// guarded by the session's mu.
type work struct {
	cwd     string // the host folder the bottle was started from: fetch's repository
	copyGit bool
	// base is the commit the bottle was given; empty without copyGit or
	// when it could not be read (baseErr says why).
	base    string
	baseErr error
	// fetched is what the last Fetch brought home; nil before one.
	fetched *gitwork.Fetched
	// unfetched is the work Close found not fetched; nil when there was
	// none or it could not be counted.
	unfetched *Unfetched
}

// Unfetched counts the agent's work that no Fetch brought home.
type Unfetched struct {
	Commits int
	Files   int
}

// noteStart records where the bottle's work comes from, right after the
// backend started it: the host folder, and with CopyGit the commit the
// agent starts from, against which its changes are counted. A HEAD that
// cannot be read does not fail the start; Changes and Fetch say why.
func (s *Session) noteStart(ctx context.Context, b backend.Bottle, spec backend.StartSpec) {
	w := work{cwd: spec.Cwd, copyGit: spec.CopyGit}
	if spec.CopyGit {
		w.base, w.baseErr = gitwork.Head(ctx, b, b.Info().Workspace)
		if w.baseErr != nil {
			s.r.log.Warn("reading the commit the bottle starts from", "session", s.id, "err", w.baseErr)
		}
	}
	s.mu.Lock()
	s.work = w
	s.mu.Unlock()
}

// bound returns ctx cancelled also when the session starts closing, so
// that a copy or a fetch in progress does not hold the teardown.
func (s *Session) bound(ctx context.Context) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.life, func() { cancel(context.Cause(s.life)) })
	return ctx, func(cause error) { stop(); cancel(cause) }
}

// CopyOut copies the file or folder containerPath (absolute, cleaned, not
// /) of the bottle to hostPath, and returns the file bytes written. It
// reads what the agent sees, as the bottle's Archive makes it. hostcopy
// checks every entry on the way in; on any error, the archive's included,
// hostPath is left as it was.
func (s *Session) CopyOut(ctx context.Context, containerPath, hostPath string, opts hostcopy.Options) (int64, error) {
	b, err := s.ready()
	if err != nil {
		return 0, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel(nil)
	pr, pw := io.Pipe()
	type extracted struct {
		n   int64
		err error
	}
	done := make(chan extracted, 1)
	go func() {
		n, err := hostcopy.Extract(ctx, newTailGate(pr), hostPath, opts)
		switch {
		case isCopyError(err):
			// The archive is refused: stop its making at once (an exec
			// in the bottle is killed).
			cancel(err)
			pr.CloseWithError(err)
		case err != nil:
			// Most likely the archive failed (a path that is not there
			// makes an empty one): let it finish, so that its error says
			// why, but read no more than the tail of a failed archive.
			_, _ = io.CopyN(io.Discard, pr, drainLimit)
			pr.CloseWithError(err)
		default:
			// tar pads an archive past the end marker Extract stops at.
			_, _ = io.Copy(io.Discard, pr)
		}
		done <- extracted{n, err}
	}()
	archiveErr := b.Archive(ctx, containerPath, pw)
	// nil: the reader sees the end of the stream; an error reaches
	// Extract instead of the archive's end, and it keeps nothing.
	pw.CloseWithError(archiveErr)
	res := <-done

	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("copy %s out of session %s: %w", containerPath, s.id, err)
	}
	switch {
	case isCopyError(res.err):
		return fail(res.err)
	case archiveErr != nil:
		s.checkGone(archiveErr)
		if res.err != nil && !errors.Is(archiveErr, backend.ErrInvalid) {
			return fail(res.err) // it closed the stream the archive was written to
		}
		return fail(archiveErr)
	case res.err != nil:
		return fail(res.err)
	}
	return res.n, nil
}

// tarRecord is the size of tar's records (-b 20: 20 blocks of 512 bytes).
// The archive's end marker lies in its last record.
const tarRecord = 20 * 512

// tailGate reads r but holds back its last tarRecord bytes until r ends:
// the tar end marker is in them, so Extract cannot finish (and move what
// it made into place) before tar's exit is known. When r ends with an
// error (tar failed), Extract gets that error instead of the end, and
// removes what it made.
type tailGate struct {
	r          io.Reader
	buf        []byte
	start, end int // buf[start:end] read and not yet released
	err        error
}

func newTailGate(r io.Reader) *tailGate {
	return &tailGate{r: r, buf: make([]byte, tarRecord+64<<10)}
}

func (g *tailGate) Read(p []byte) (int, error) {
	for {
		ready := g.end - g.start - tarRecord
		if g.err == io.EOF {
			ready = g.end - g.start
		}
		if ready > 0 {
			n := copy(p, g.buf[g.start:g.start+ready])
			g.start += n
			return n, nil
		}
		if g.err != nil {
			return 0, g.err
		}
		if g.end == len(g.buf) {
			g.end = copy(g.buf, g.buf[g.start:g.end])
			g.start = 0
		}
		n, err := g.r.Read(g.buf[g.end:])
		g.end += n
		g.err = err
	}
}

// isCopyError reports whether err is hostcopy's verdict on the archive or
// the destination, which is more telling than the exit of a killed tar.
func isCopyError(err error) bool {
	return errors.Is(err, hostcopy.ErrExists) || errors.Is(err, hostcopy.ErrTooLarge) || errors.Is(err, hostcopy.ErrUnsafe)
}

// gitState returns the ready bottle and what its repository's work is
// counted from; a session without copyGit, or whose starting commit is not
// known, is ErrNoGit.
func (s *Session) gitState() (backend.Bottle, work, error) {
	b, err := s.ready()
	if err != nil {
		return nil, work{}, err
	}
	s.mu.Lock()
	w := s.work
	s.mu.Unlock()
	switch {
	case !w.copyGit:
		return nil, w, fmt.Errorf("session %s was started without copyGit, so the bottle has no history: %w", s.id, gitwork.ErrNoGit)
	case w.base == "":
		return nil, w, fmt.Errorf("session %s: the commit the bottle started from is not known (%v): %w", s.id, w.baseErr, gitwork.ErrNoGit)
	}
	return b, w, nil
}

// Changes reads what the agent changed in its workspace since the start:
// its commits on top of the starting commit, and every file that differs,
// with the diff when asked.
func (s *Session) Changes(ctx context.Context, diff bool) (*gitwork.Changes, error) {
	b, w, err := s.gitState()
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel(nil)
	ch, err := gitwork.ReadChanges(ctx, b, b.Info().Workspace, w.base, diff)
	if err != nil {
		s.checkGone(err)
		return nil, fmt.Errorf("changes in session %s: %w", s.id, err)
	}
	return ch, nil
}

// DefaultBranch is the branch Fetch makes when none is given.
func (s *Session) DefaultBranch() string {
	return "bottle/" + s.Info().Agent + "/" + s.id
}

// Fetch brings the agent's commits, and with includeUncommitted its
// uncommitted and untracked work as one more commit, into the host
// repository the session started from, as branch (DefaultBranch when
// empty). Fetches of one session run one at a time.
func (s *Session) Fetch(ctx context.Context, branch string, includeUncommitted bool) (*gitwork.Fetched, error) {
	b, w, err := s.gitState()
	if err != nil {
		return nil, err
	}
	if branch == "" {
		branch = s.DefaultBranch()
	}
	ctx, cancel := s.bound(ctx)
	defer cancel(nil)
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	f, err := gitwork.Fetch(ctx, b, b.Info().Workspace, w.base, gitwork.FetchOptions{
		HostRepo:           w.cwd,
		Branch:             branch,
		Session:            s.id,
		IncludeUncommitted: includeUncommitted,
	})
	if err != nil {
		s.checkGone(err)
		return nil, fmt.Errorf("fetch from session %s: %w", s.id, err)
	}
	if f.Branch != "" {
		s.mu.Lock()
		s.work.fetched = f
		s.mu.Unlock()
	}
	return f, nil
}

// noteUnfetched counts, before Close tears a ready bottle down, the work
// that no Fetch brought home, so that the close can say what went with it.
// It is bounded in time; a count that fails is logged and left out.
func (s *Session) noteUnfetched(ctx context.Context) {
	b, w, err := s.gitState()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, unfetchedTimeout)
	defer cancel()
	u, err := unfetched(ctx, b, w)
	if err != nil {
		s.r.log.Warn("counting the work not fetched before closing", "session", s.id, "err", err)
		return
	}
	s.mu.Lock()
	s.work.unfetched = u
	s.mu.Unlock()
}

// unfetched counts the commits and files of the bottle's workspace that
// the last fetch did not bring home:
//   - nothing fetched: every commit and file changed since base;
//   - a fetch without the uncommitted work: what changed since the commit
//     fetched, which is in the bottle's repository;
//   - a fetch with it: the commits not among those fetched, and the files
//     whose content is not the one fetched (gitwork.NotFetched compares the
//     snapshot's tree now with the one fetched, path by path).
func unfetched(ctx context.Context, b backend.Bottle, w work) (*Unfetched, error) {
	ws := b.Info().Workspace
	var u Unfetched
	switch {
	case w.fetched == nil:
		ch, err := gitwork.ReadChanges(ctx, b, ws, w.base, false)
		if err != nil {
			return nil, err
		}
		u = Unfetched{Commits: len(ch.Commits), Files: len(ch.Files)}
	case !w.fetched.Uncommitted:
		ch, err := gitwork.ReadChanges(ctx, b, ws, w.fetched.Head, false)
		if err != nil {
			return nil, err
		}
		u = Unfetched{Commits: len(ch.Commits), Files: len(ch.Files)}
	default:
		ch, err := gitwork.ReadChanges(ctx, b, ws, w.base, false)
		if err != nil {
			return nil, err
		}
		u.Commits, u.Files = gitwork.NotFetched(w.fetched, ch)
	}
	if u == (Unfetched{}) {
		return nil, nil
	}
	return &u, nil
}

// Unfetched is the work the session's bottle had that no Fetch brought
// home when Close began; nil when there was none, the session had no git,
// or it could not be counted.
func (s *Session) Unfetched() *Unfetched {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.work.unfetched
}
