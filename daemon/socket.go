// Package daemon is the plumbing of the per-user bottle daemon: where its
// socket and log live, listening on that socket for its own user only,
// serving many connections until it is idle or told to stop, and the
// client side that dials it (starting it when none answers) and forwards
// stdio to it. It knows the server only through the Server interface, so
// it carries bytes and never reads the protocol.
package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultSocket is the user's daemon socket:
// $XDG_RUNTIME_DIR/bottle/daemon.sock, else /tmp/bottle-$UID/daemon.sock.
// The fallback is /tmp itself, not $TMPDIR, so an editor and a terminal
// with different TMPDIRs still find the same daemon.
func DefaultSocket() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "bottle", "daemon.sock")
	}
	return filepath.Join("/tmp", "bottle-"+strconv.Itoa(os.Geteuid()), "daemon.sock")
}

// StateDir is the folder of the daemon's log: $XDG_STATE_HOME/bottle, else
// ~/.local/state/bottle, else (no home) the socket's folder.
func StateDir(socket string) string {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "bottle")
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		return filepath.Join(home, ".local", "state", "bottle")
	}
	return filepath.Dir(socket)
}

// LogFile is the file an auto-started daemon's stdout and stderr are
// appended to.
func LogFile(socket string) string {
	return filepath.Join(StateDir(socket), "daemon.log")
}

// ErrRunning is returned by Listen when another daemon holds the socket's
// lock: that daemon serves the socket, so this one has nothing to do.
var ErrRunning = errors.New("another daemon serves this socket")

// perms are the modes of the socket's folder and of the socket. A folder
// more open than perms.dir is refused.
type perms struct {
	dir, sock os.FileMode
}

// strict is the only production setting: the user alone can reach the
// socket. Tests that connect as another uid use a wider one.
var strict = perms{dir: 0o700, sock: 0o600}

// Listener is the daemon's unix socket listener. It holds the socket's
// lock file until Close, so exactly one daemon serves a socket.
type Listener struct {
	*net.UnixListener
	lock *os.File
}

// Listen listens on socket for the daemon: it makes the socket's folder
// (0700, refusing one owned by another uid or open to other users), takes
// the socket's lock (ErrRunning when a live daemon holds it), replaces a
// socket file a dead daemon left, and makes the socket 0600. No TCP.
func Listen(socket string) (*Listener, error) {
	return listen(socket, strict)
}

func listen(socket string, p perms) (*Listener, error) {
	if err := prepareDir(filepath.Dir(socket), p.dir); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(socket+".lock", os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the daemon's lock file: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", socket, ErrRunning)
		}
		return nil, fmt.Errorf("lock %s.lock: %w", socket, err)
	}
	// With the lock held no live daemon listens here: a socket file left
	// behind is a dead daemon's, and listening needs its name free.
	if fi, err := os.Lstat(socket); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			lock.Close()
			return nil, fmt.Errorf("%s exists and is not a socket: remove it, or choose another --socket", socket)
		}
		if err := os.Remove(socket); err != nil {
			lock.Close()
			return nil, fmt.Errorf("remove the stale socket %s: %w", socket, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	// Between bind and this chmod the socket has the umask's mode, but
	// the folder already keeps everyone else out.
	if err := os.Chmod(socket, p.sock); err != nil {
		ln.Close()
		lock.Close()
		return nil, fmt.Errorf("make %s mode %04o: %w", socket, p.sock, err)
	}
	return &Listener{UnixListener: ln, lock: lock}, nil
}

// Close stops listening, removes the socket file, then releases the lock:
// in that order, so a daemon that starts next never has its fresh socket
// removed by this one.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	l.lock.Close()
	return err
}

// prepareDir makes dir with mode perm when it is missing, and refuses one
// that is not a plain folder of this user no more open than perm: another
// user who made it first could otherwise plant a socket of their own
// there.
func prepareDir(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("make the socket folder: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check the socket folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the socket folder %s is not a folder (a symlink?): remove it, or choose another --socket", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("the socket folder %s belongs to uid %d, not to you (uid %d): choose another --socket, or have it removed", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&^perm != 0 {
		return fmt.Errorf("the socket folder %s has mode %04o, open to other users: run chmod %o %s (or remove it) and start again", dir, fi.Mode().Perm(), perm, dir)
	}
	return nil
}

// peerUID is the effective uid of the process at the other end of c, as
// the kernel recorded it when that process connected.
func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("not a unix socket connection (%T)", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("read the peer's credentials: %w", credErr)
	}
	return int(cred.Uid), nil
}
