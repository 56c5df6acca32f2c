package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/internal/testwait"
)

// waitLong bounds the waits for what a test expects to happen soon; it
// only turns a hang into a failure that says what was awaited.
const waitLong = 10 * time.Second

// served is a Serve running in this process.
type served struct {
	sock   string
	cancel context.CancelFunc
	done   chan error
}

// serving runs Serve on sock (listened on with p) with srv until the test
// ends.
func serving(t *testing.T, sock string, p perms, srv Server, idle time.Duration) *served {
	t.Helper()
	ln, err := listen(sock, p)
	if err != nil {
		t.Fatalf("listen on %s: %v", sock, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{sock: sock, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- Serve(ctx, ln, srv, idle) }()
	t.Cleanup(func() {
		cancel()
		s.wait(t)
	})
	return s
}

// wait waits for Serve to return, and returns its error.
func (s *served) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the next wait, the cleanup's
		return err
	case <-time.After(waitLong):
		t.Fatalf("Serve did not return within %v", waitLong)
		return nil
	}
}

// returned reports whether Serve has returned.
func (s *served) returned() bool {
	select {
	case err := <-s.done:
		s.done <- err
		return true
	default:
		return false
	}
}

func connect(t *testing.T, sock string) net.Conn {
	t.Helper()
	c, err := Dial(context.Background(), sock, false)
	if err != nil {
		t.Fatalf("Dial %s: %v", sock, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestIdleExit: the daemon exits once idle has passed with no connection
// and nothing running, and not before. "Not before" is checked after
// several idle periods' worth of Busy polls, not after a sleep.
func TestIdleExit(t *testing.T) {
	const idle = 5 * time.Millisecond
	tests := []struct {
		name string
		// hold keeps the daemon from idling and returns its release. It
		// is called with the server busy, so the daemon cannot idle out
		// before the hold is in place.
		hold func(t *testing.T, s *served, srv *fakeServer) (release func())
	}{
		{"nothing open", nil},
		{"busy server", func(t *testing.T, s *served, srv *fakeServer) func() {
			return func() { srv.setBusy(false) }
		}},
		{"connection open", func(t *testing.T, s *served, srv *fakeServer) func() {
			c := connect(t, s.sock)
			greeting(t, c)
			srv.setBusy(false)
			return func() { c.Close() }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeServer{}
			sock := socketPath(t)
			srv.setBusy(tt.hold != nil)
			s := serving(t, sock, strict, srv, idle)
			if tt.hold != nil {
				release := tt.hold(t, s, srv)
				from := srv.calls()
				testwait.Until(t, "ten idle periods of Busy polls", waitLong, func() bool { return srv.calls() >= from+100 })
				if s.returned() {
					t.Fatal("Serve returned while the daemon was held")
				}
				release()
			}
			if err := s.wait(t); err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the socket is still there after the idle exit (err %v)", err)
			}
		})
	}
}

// TestStopTearsDownFirst: when ctx ends the daemon stops accepting,
// calls CloseAll, and only then ends the connections still open, so
// their clients see the teardown.
func TestStopTearsDownFirst(t *testing.T) {
	srv := &fakeServer{}
	s := serving(t, socketPath(t), strict, srv, time.Hour)
	c := connect(t, s.sock)
	greeting(t, c)
	s.cancel()
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	notes := srv.noted()
	closed, ended := slices.Index(notes, "CloseAll"), slices.Index(notes, "conn ctx ended")
	if closed < 0 || ended < closed {
		t.Errorf("notes %q: want CloseAll, then the connection's ctx ended", notes)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("reading the connection to its end: %v", err)
	}
	if _, err := Dial(context.Background(), s.sock, false); err == nil {
		t.Error("Dial succeeded after the daemon stopped")
	}
}

// TestVanishingClientLeavesDaemonServing: a client that goes away, at
// once or while the daemon writes to it, ends only its connection.
func TestVanishingClientLeavesDaemonServing(t *testing.T) {
	tests := []struct {
		name string
		send string
		note string // what the server notes once the client is gone
	}{
		{"gone at once", "", "conn eof"},
		{"gone while the daemon writes", "flood\n", "flood write failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeServer{}
			s := serving(t, socketPath(t), strict, srv, time.Hour)
			c := connect(t, s.sock)
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			greeting(t, c)
			c.Close()
			testwait.Until(t, "the server to see the client gone ("+tt.note+")", waitLong, func() bool { return contains(srv.noted(), tt.note) })
			other := connect(t, s.sock)
			// Written after the greeting is read, so greeting's reader
			// cannot take the echo too.
			greeting(t, other)
			if _, err := io.WriteString(other, "still here\n"); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len("still here\n"))
			if _, err := io.ReadFull(other, buf); err != nil || string(buf) != "still here\n" {
				t.Errorf("echo after a client vanished: %q, %v", buf, err)
			}
			if s.returned() {
				t.Error("Serve returned after a client vanished")
			}
		})
	}
}

func TestForward(t *testing.T) {
	srv := &fakeServer{}
	s := serving(t, socketPath(t), strict, srv, time.Hour)

	t.Run("end of input ends the connection the orderly way", func(t *testing.T) {
		var out strings.Builder
		if err := Forward(context.Background(), connect(t, s.sock), strings.NewReader("ping\npong"), &out); err != nil {
			t.Fatalf("Forward: %v", err)
		}
		if want := "pid " + strconv.Itoa(os.Getpid()) + "\nping\npong"; out.String() != want {
			t.Errorf("forwarded %q, want %q", out.String(), want)
		}
	})
	t.Run("ctx ends it", func(t *testing.T) {
		in, inw := io.Pipe() // input that never ends
		t.Cleanup(func() { inw.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Forward(ctx, connect(t, s.sock), in, io.Discard) }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Forward: %v, want context.Canceled", err)
			}
		case <-time.After(waitLong):
			t.Fatal("Forward did not return when ctx ended")
		}
	})
}
