package daemon

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/lockedbuf"
)

// The test binary doubles as the programs the tests run as processes: a
// daemon (what Dial starts, as `PROGRAM daemon --socket PATH`), a client
// that prints what a socket says, and a daemon that fails at once.
const (
	roleEnv   = "BOTTLE_DAEMON_TEST_ROLE"
	socketEnv = "BOTTLE_DAEMON_TEST_SOCKET"
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "daemon":
		os.Exit(fakeDaemon(os.Args[1:]))
	case "client":
		os.Exit(fakeClient(os.Getenv(socketEnv)))
	case "failing-daemon":
		fmt.Fprintln(os.Stderr, "fake daemon: boom")
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// fakeDaemon is `bottle-rpc daemon` with a fakeServer for rpc.Server.
func fakeDaemon(args []string) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if len(args) == 0 || args[0] != "daemon" {
		slog.Error("fake daemon: want the daemon command", "args", args)
		return 2
	}
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	socket := fs.String("socket", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	slog.Info("fake daemon starting", "pid", os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := Listen(*socket)
	if errors.Is(err, ErrRunning) {
		slog.Info("a daemon already serves the socket: exiting", "socket", *socket)
		return 0
	}
	if err != nil {
		slog.Error("fake daemon", "err", err)
		return 1
	}
	// Long enough for any test, short enough that a daemon a failed test
	// left behind goes away by itself.
	if err := Serve(ctx, ln, &fakeServer{}, 30*time.Second); err != nil {
		slog.Error("fake daemon", "err", err)
		return 1
	}
	slog.Info("fake daemon exits")
	return 0
}

// fakeClient prints all that socket says to stdout.
func fakeClient(socket string) int {
	c, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake client:", err)
		return 1
	}
	defer c.Close()
	if _, err := io.Copy(os.Stdout, c); err != nil {
		fmt.Fprintln(os.Stderr, "fake client:", err)
		return 1
	}
	return 0
}

// fakeServer greets each connection with "pid PID", then echoes each line
// it reads; a line "flood" makes it write until writing fails. It notes
// what happens, in order, and logs each note.
type fakeServer struct {
	mu        sync.Mutex
	busy      bool
	busyCalls int
	notes     []string
}

func (f *fakeServer) note(s string) {
	f.mu.Lock()
	f.notes = append(f.notes, s)
	f.mu.Unlock()
	slog.Info("fake server: " + s)
}

// noted returns the notes so far.
func (f *fakeServer) noted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.notes...)
}

func (f *fakeServer) ServeConn(ctx context.Context, rwc io.ReadWriteCloser) error {
	f.note("conn open")
	stop := context.AfterFunc(ctx, func() {
		f.note("conn ctx ended")
		rwc.Close()
	})
	defer stop()
	if _, err := fmt.Fprintf(rwc, "pid %d\n", os.Getpid()); err != nil {
		return err
	}
	br := bufio.NewReader(rwc)
	for {
		line, err := br.ReadString('\n')
		if line == "flood\n" {
			chunk := make([]byte, 64<<10)
			for {
				if _, err := rwc.Write(chunk); err != nil {
					f.note("flood write failed")
					return err
				}
			}
		}
		if line != "" {
			if _, werr := io.WriteString(rwc, line); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			f.note("conn eof")
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (f *fakeServer) Busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busyCalls++
	return f.busy
}

func (f *fakeServer) setBusy(b bool) {
	f.mu.Lock()
	f.busy = b
	f.mu.Unlock()
}

func (f *fakeServer) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.busyCalls
}

func (f *fakeServer) CloseAll(context.Context) error {
	f.note("CloseAll")
	return nil
}

// greeting reads the fake server's first line and returns its pid.
func greeting(t *testing.T, c net.Conn) int {
	t.Helper()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read the daemon's greeting: %v (got %q)", err, line)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "pid %d\n", &pid); err != nil {
		t.Fatalf("the daemon's greeting %q: %v", line, err)
	}
	return pid
}

// contains reports whether notes has want.
func contains(notes []string, want string) bool {
	for _, n := range notes {
		if n == want {
			return true
		}
	}
	return false
}

// logLines collects what slog.Default logs during a test.
func logLines(t *testing.T) *lockedbuf.Buffer {
	t.Helper()
	var buf lockedbuf.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}
