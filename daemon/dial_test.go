package daemon

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/bottle-dev/bottle/internal/testwait"
)

// autoStarting sets the test up for Dial(auto): the daemon it starts is
// this test binary in its daemon role, with its log in the test's state
// folder. It returns the socket and the log's path; every daemon started
// on the socket is stopped when the test ends.
func autoStarting(t *testing.T) (sock, logPath string) {
	t.Helper()
	t.Setenv(roleEnv, "daemon")
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	sock = socketPath(t)
	t.Cleanup(func() { stopDaemons(t, sock) })
	return sock, LogFile(sock)
}

// stopDaemons SIGTERMs the daemon serving sock, if one does, and waits for
// it to exit.
func stopDaemons(t *testing.T, sock string) {
	c, err := dial(context.Background(), sock)
	if err != nil {
		return
	}
	pid := greeting(t, c)
	c.Close()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Errorf("stop daemon %d: %v", pid, err)
		return
	}
	waitGone(t, pid)
}

// waitGone waits for pid to have exited and been reaped (Dial reaps the
// daemons it started).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	testwait.Until(t, "daemon process to exit", waitLong, func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
}

func dialAuto(t *testing.T, sock string) int {
	t.Helper()
	c, err := Dial(context.Background(), sock, true)
	if err != nil {
		t.Fatalf("Dial(auto): %v", err)
	}
	defer c.Close()
	return greeting(t, c)
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the daemon's log: %v", err)
	}
	return string(b)
}

// TestConcurrentAutoStartsMakeOneDaemon: clients that find no daemon at
// the same time start one between them, and all reach it.
func TestConcurrentAutoStartsMakeOneDaemon(t *testing.T) {
	sock, logPath := autoStarting(t)
	const clients = 8
	pids := make([]int, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := Dial(context.Background(), sock, true)
			if err != nil {
				errs[i] = err
				return
			}
			defer c.Close()
			pids[i] = greeting(t, c)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: Dial(auto): %v", i, err)
		}
	}
	for i, pid := range pids {
		if pid != pids[0] || pid == os.Getpid() {
			t.Errorf("client %d reached daemon %d, client 0 daemon %d (this test is %d)", i, pid, pids[0], os.Getpid())
		}
	}
	if n := strings.Count(readLog(t, logPath), "fake daemon starting"); n != 1 {
		t.Errorf("%d daemons were started, want 1; log:\n%s", n, readLog(t, logPath))
	}
}

// TestSecondDaemonExitsQuietly: a daemon started on a socket another
// serves says so and exits 0, leaving the first serving.
func TestSecondDaemonExitsQuietly(t *testing.T) {
	sock, _ := autoStarting(t)
	first := dialAuto(t, sock)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "daemon", "--socket", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("second daemon: %v, want exit 0; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "a daemon already serves the socket") {
		t.Errorf("second daemon's output does not say why it exits:\n%s", out)
	}
	if again := dialAuto(t, sock); again != first {
		t.Errorf("after the second daemon exited, daemon %d answers, want the first, %d", again, first)
	}
}

// TestKilledDaemonIsReplaced: a daemon killed with SIGKILL leaves its
// socket file and its lock; the next Dial(auto) starts a daemon that
// takes both over.
func TestKilledDaemonIsReplaced(t *testing.T) {
	sock, _ := autoStarting(t)
	dead := dialAuto(t, sock)
	if err := syscall.Kill(dead, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, dead)
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("want the killed daemon's socket file left behind: %v", err)
	}
	if next := dialAuto(t, sock); next == dead {
		t.Errorf("the killed daemon %d still answers", dead)
	}
}

// TestSIGTERMTearsDown: a daemon told to stop tears down (CloseAll)
// before its connections end, then exits 0 and removes its socket.
func TestSIGTERMTearsDown(t *testing.T) {
	sock, logPath := autoStarting(t)
	c, err := Dial(context.Background(), sock, true)
	if err != nil {
		t.Fatalf("Dial(auto): %v", err)
	}
	defer c.Close()
	pid := greeting(t, c)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("read the connection to its end: %v", err)
	}
	waitGone(t, pid)
	log := readLog(t, logPath)
	closed := strings.Index(log, "fake server: CloseAll")
	ended := strings.Index(log, "fake server: conn ctx ended")
	if closed < 0 || ended < closed || !strings.Contains(log, "fake daemon exits") {
		t.Errorf("want CloseAll, then the connection ended, then the exit; log:\n%s", log)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after the daemon exited (err %v)", err)
	}
}

// TestDialFailures: each way of not reaching a daemon says what to do.
func TestDialFailures(t *testing.T) {
	tests := []struct {
		name string
		role string // of the program Dial(auto) starts; "" dials without auto
		want []string
	}{
		{"nothing answers, no auto", "", []string{"no daemon answers", "bottle-rpc daemon --socket", "--remote=auto"}},
		{"the daemon fails to start", "failing-daemon", []string{"exited before it answered", "exit status 3", "fake daemon: boom", "daemon.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock, logPath := autoStarting(t)
			t.Setenv(roleEnv, tt.role)
			c, err := Dial(context.Background(), sock, tt.role != "")
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			for _, w := range append(tt.want, filepath.Base(sock)) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Dial: %v\nwant it to say %q", err, w)
				}
			}
			if tt.role == "" {
				if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Dial without auto started a daemon (its log exists: %v)", err)
				}
			}
		})
	}
}

// TestLongLogIsMovedAside: a start finds a log past maxLog and keeps it as
// LOG.old, writing a fresh one.
func TestLongLogIsMovedAside(t *testing.T) {
	sock, logPath := autoStarting(t)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, make([]byte, maxLog+1), 0o600); err != nil {
		t.Fatal(err)
	}
	dialAuto(t, sock)
	if fi, err := os.Stat(logPath + ".old"); err != nil || fi.Size() != maxLog+1 {
		t.Errorf("the long log was not moved to %s.old (%v)", logPath, err)
	}
	if log := readLog(t, logPath); !strings.HasPrefix(log, "time=") || !strings.Contains(log, "fake daemon starting") {
		t.Errorf("the fresh log holds %q, want only this start's lines", log)
	}
}
