package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// startTimeout bounds how long Dial waits for a daemon it started to
// answer.
const startTimeout = 15 * time.Second

// maxLog is the size past which the next start moves the daemon's log
// aside to LOG.old instead of appending to it.
const maxLog = 8 << 20

// executable is the program Dial starts as the daemon; tests run
// themselves.
var executable = os.Executable

// Dial connects to the daemon on socket. When nothing answers there and
// auto is set, it starts one (`bottle-rpc daemon --socket socket`,
// detached, its output appended to LogFile) and connects to it; a lock
// beside the socket makes concurrent callers start one daemon between
// them. Without auto it only connects. It refuses a daemon that runs as
// another user.
func Dial(ctx context.Context, socket string, auto bool) (net.Conn, error) {
	if auto {
		// Before trusting whatever listens there: the folder must be
		// this user's alone, or someone else's daemon could be waiting.
		if err := prepareDir(filepath.Dir(socket), strict.dir); err != nil {
			return nil, err
		}
	}
	c, err := dial(ctx, socket)
	if err == nil || !absent(err) {
		return c, err
	}
	if !auto {
		return nil, fmt.Errorf("%w: no daemon answers there; start one with `bottle-rpc daemon --socket %s`, or use --remote=auto", err, socket)
	}
	lock, err := lockWait(ctx, socket+".start.lock")
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	// Whoever held the start lock before may have started one already.
	if c, err := dial(ctx, socket); err == nil || !absent(err) {
		return c, err
	}
	return start(ctx, socket)
}

// dial connects to socket and checks the daemon runs as this user.
func dial(ctx context.Context, socket string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("connect to the bottle daemon: %w", err)
	}
	uid, err := peerUID(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to the bottle daemon: %w", err)
	}
	if own := os.Geteuid(); uid != own {
		c.Close()
		return nil, fmt.Errorf("the daemon on %s runs as uid %d, not as you (uid %d): use a socket of your own", socket, uid, own)
	}
	return c, nil
}

// absent reports whether a dial error means no daemon listens: no socket
// file, or one a dead daemon left.
func absent(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// start starts a daemon on socket and waits for it to answer. The caller
// holds the start lock.
func start(ctx context.Context, socket string) (net.Conn, error) {
	exe, err := executable()
	if err != nil {
		return nil, fmt.Errorf("start the bottle daemon: find this program: %w", err)
	}
	logPath := LogFile(socket)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, fmt.Errorf("start the bottle daemon: make its log folder: %w", err)
	}
	// Every start appends; one earlier log is kept, so the file's size
	// stays bounded over months of starts.
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > maxLog {
		_ = os.Rename(logPath, logPath+".old")
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start the bottle daemon: open its log: %w", err)
	}
	defer logFile.Close()
	logStart, _ := logFile.Seek(0, io.SeekEnd)
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("start the bottle daemon: %w", err)
	}
	defer devNull.Close()

	// Absolute: the daemon runs in the root folder.
	abs, err := filepath.Abs(socket)
	if err != nil {
		return nil, fmt.Errorf("start the bottle daemon: %w", err)
	}
	cmd := exec.Command(exe, "daemon", "--socket", abs)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, logFile, logFile
	// Its own session: the terminal's or the editor's signals and hangups
	// are not the daemon's. The root folder: it outlives the folder it
	// was started from.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the bottle daemon %s: %w", exe, err)
	}
	exited := make(chan error, 1)
	// Reaps it when it ends, even long after this call returned.
	go func() { exited <- cmd.Wait() }()

	hint := func() string {
		if tail := logTail(logPath, logStart); tail != "" {
			return fmt.Sprintf("; its log %s says:\n%s", logPath, tail)
		}
		return "; see its log " + logPath
	}
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		c, err := dial(ctx, socket)
		if err == nil || !absent(err) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("start the bottle daemon: %w", context.Cause(ctx))
		case <-deadline.C:
			return nil, fmt.Errorf("the bottle daemon started on %s did not answer within %v%s", socket, startTimeout, hint())
		case err := <-exited:
			// Status 0 is a daemon that found another serving the
			// socket: that one will answer.
			if err != nil {
				return nil, fmt.Errorf("the bottle daemon started on %s exited before it answered (%v)%s", socket, err, hint())
			}
			exited = nil
		case <-time.After(wait):
		}
	}
}

// logTail is at most the last 2 KiB the log got from offset on, so an
// error shows what the daemon said this time.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const most = 2048
	if end, err := f.Seek(0, io.SeekEnd); err == nil && end-offset > most {
		offset = end - most
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, most))
	return strings.TrimSpace(string(b))
}

// lockWait takes an exclusive flock on path, waiting for it until ctx
// ends. It polls, because a blocked flock cannot be cancelled.
func lockWait(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the daemon's start lock: %w", err)
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for the daemon's start lock: %w", context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}

// Forward copies in to conn and conn to out until the daemon's side ends
// (nil) or ctx does. The end of in is passed on as the end of conn's
// writing half, so the daemon sees the end of input and ends the
// connection the orderly way; Forward returns once it has. conn is closed
// on return.
func Forward(ctx context.Context, conn net.Conn, in io.Reader, out io.Writer) error {
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, in)
		// An error reading in ends the input as its end does; one writing
		// conn means the daemon's side is ending, which the copy below
		// sees.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	down := make(chan error, 1)
	go func() {
		// Plain reads and writes through one large buffer: io.Copy would
		// splice the socket into a stdout pipe, two syscalls through a
		// kernel pipe for every few KB of terminal output, and measured
		// slower here (BENCHMARKS.md, the daemon's hop).
		_, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{conn}, make([]byte, 256<<10))
		down <- err
	}()
	select {
	case err := <-down:
		if err != nil {
			return fmt.Errorf("forward from the daemon: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("forward: %w", context.Cause(ctx))
	}
}
