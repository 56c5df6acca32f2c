package integration

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestRunInARealTerminal drives "bottle-rpc run" in a pty, as a person at
// a terminal would: answer the preflight, type a command, read it back,
// and get the agent's exit code.
func TestRunInARealTerminal(t *testing.T) {
	cmd := serverCmd([]string{"run", "sh", "--manifest", writeManifest(t, "runsc")})
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 90, Rows: 25})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := strings.Contains(screen.String(), want)
			mu.Unlock()
			if ok {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the terminal never showed %q; it shows:\n%s", want, screen.String())
	}

	waitFor("runsc (gVisor)")
	waitFor("Start this bottle? [y/N]")
	io.WriteString(tty, "y\r")
	waitFor("node@bottle")
	io.WriteString(tty, "echo product=$((6*7)); stty size\r")
	waitFor("product=42")
	waitFor("25 90")
	pty.Setsize(tty, &pty.Winsize{Cols: 100, Rows: 30})
	cmd.Process.Signal(syscall.SIGWINCH)
	io.WriteString(tty, "stty size\r")
	waitFor("30 100")
	io.WriteString(tty, "exit 3\r")

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Errorf("bottle-rpc run exited with %v, want the agent's code 3", err)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("bottle-rpc run did not exit after the agent did")
	}
}
