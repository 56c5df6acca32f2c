package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestDefaultSocket(t *testing.T) {
	fallback := "/tmp/bottle-" + strconv.Itoa(os.Geteuid()) + "/daemon.sock"
	tests := []struct {
		name, runtimeDir, want string
	}{
		{"runtime folder", "/run/user/1000", "/run/user/1000/bottle/daemon.sock"},
		{"no runtime folder", "", fallback},
		{"relative runtime folder, ignored as XDG says", "run", fallback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_RUNTIME_DIR", tt.runtimeDir)
			if got := DefaultSocket(); got != tt.want {
				t.Errorf("DefaultSocket() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLogFile(t *testing.T) {
	tests := []struct {
		name, stateHome, home, want string
	}{
		{"state folder", "/st", "/home/u", "/st/bottle/daemon.log"},
		{"home", "", "/home/u", "/home/u/.local/state/bottle/daemon.log"},
		{"relative state folder, ignored", "st", "/home/u", "/home/u/.local/state/bottle/daemon.log"},
		{"neither: the socket's folder", "", "", "/run/b/daemon.log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", tt.stateHome)
			t.Setenv("HOME", tt.home)
			if got := LogFile("/run/b/daemon.sock"); got != tt.want {
				t.Errorf("LogFile = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestListenMakesPrivateFolderAndSocket(t *testing.T) {
	sock := socketPath(t)
	ln, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(sock): os.ModeDir | 0o700, sock: os.ModeSocket | 0o600} {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModeType | os.ModePerm); got != want {
			t.Errorf("%s has mode %v, want %v", path, got, want)
		}
	}
	if _, err := Listen(sock); !errors.Is(err, ErrRunning) {
		t.Errorf("a second Listen on the socket: err = %v, want ErrRunning", err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket file is still there after Close (err %v)", err)
	}
	ln, err = Listen(sock)
	if err != nil {
		t.Fatalf("Listen after the first listener closed: %v", err)
	}
	ln.Close()
}

// TestUnsafeFoldersAreRefused: both the daemon and a client that would
// start one refuse a socket folder someone else could have planted a
// socket in.
func TestUnsafeFoldersAreRefused(t *testing.T) {
	tests := []struct {
		name     string
		rootOnly bool
		setup    func(t *testing.T, dir string) // dir does not exist yet
		want     string
	}{
		{"folder open to others", false, func(t *testing.T, dir string) { mkdir(t, dir, 0o755) }, "run chmod 700 " + "DIR"},
		{"folder open to the group", false, func(t *testing.T, dir string) { mkdir(t, dir, 0o750) }, "open to other users"},
		{"folder of another user", true, func(t *testing.T, dir string) {
			mkdir(t, dir, 0o700)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "belongs to uid 65534"},
		{"symlink to a folder", false, func(t *testing.T, dir string) {
			target := dir + "-target"
			mkdir(t, target, 0o700)
			if err := os.Symlink(target, dir); err != nil {
				t.Fatal(err)
			}
		}, "is not a folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rootOnly && os.Geteuid() != 0 {
				t.Skip("needs root to make a folder of another user")
			}
			dir := filepath.Join(t.TempDir(), "bottle")
			tt.setup(t, dir)
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			sock := filepath.Join(dir, "daemon.sock")
			if ln, err := Listen(sock); err == nil || !strings.Contains(err.Error(), want) {
				if ln != nil {
					ln.Close()
				}
				t.Errorf("Listen: err = %v, want one saying %q", err, want)
			}
			if c, err := Dial(context.Background(), sock, true); err == nil || !strings.Contains(err.Error(), want) {
				if c != nil {
					c.Close()
				}
				t.Errorf("Dial(auto): err = %v, want one saying %q", err, want)
			}
		})
	}
}

func TestListenRefusesAFileThatIsNoSocket(t *testing.T) {
	sock := socketPath(t)
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sock, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(sock)
	if err == nil {
		ln.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Listen over a regular file: err = %v, want it refused", err)
	}
	if b, _ := os.ReadFile(sock); string(b) != "mine" {
		t.Errorf("the file was changed to %q", b)
	}
}

// TestStaleSocketIsReplaced: a socket file nobody listens on (a dead
// daemon's) makes way for the next daemon.
func TestStaleSocketIsReplaced(t *testing.T) {
	sock := socketPath(t)
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := Dial(context.Background(), sock, false); err == nil || !strings.Contains(err.Error(), "no daemon answers") {
		t.Fatalf("Dial to the stale socket: err = %v, want no daemon answers", err)
	}
	srv := &fakeServer{}
	serving(t, sock, strict, srv, 0)
	c, err := Dial(context.Background(), sock, false)
	if err != nil {
		t.Fatalf("Dial to the daemon that replaced the stale socket: %v", err)
	}
	defer c.Close()
	if pid := greeting(t, c); pid != os.Getpid() {
		t.Errorf("greeted by pid %d, want this process %d", pid, os.Getpid())
	}
}

// TestOtherUserIsRefused: a connection from another uid gets one
// JSON-RPC error saying whose daemon it is, and the daemon serves on.
func TestOtherUserIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	// Another uid must reach the socket and run this test binary: a
	// folder open to all, outside t.TempDir's private one.
	dir, err := os.MkdirTemp("", "bottle-daemon-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(dir, "client")
	copyExecutable(t, client)
	logs := logLines(t)
	sock := filepath.Join(dir, "run", "daemon.sock")
	serving(t, sock, perms{dir: 0o755, sock: 0o666}, &fakeServer{}, 0)

	cmd := exec.Command(client)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), roleEnv+"=client", socketEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as uid 65534: %v; stderr: %s", err, stderrOf(err))
	}
	msg := decodeFrame(t, out)
	if string(msg.ID) != "null" || msg.Error.Code != -32600 {
		t.Errorf("refusal id %q code %d, want id null, code -32600 (frame %q)", msg.ID, msg.Error.Code, out)
	}
	for _, want := range []string{"belongs to uid 0", "you are uid 65534", "run your own `bottle-rpc daemon`"} {
		if !strings.Contains(msg.Error.Message, want) {
			t.Errorf("refusal message %q does not say %q", msg.Error.Message, want)
		}
	}
	if !strings.Contains(logs.String(), "peer_uid=65534") {
		t.Errorf("the daemon did not log the refusal; log:\n%s", logs)
	}

	c, err := Dial(context.Background(), sock, false)
	if err != nil {
		t.Fatalf("Dial by the daemon's own user after the refusal: %v", err)
	}
	defer c.Close()
	greeting(t, c)
}

type frame struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"` // "null", or empty when absent
	Error   struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// decodeFrame decodes the one Content-Length framed message b holds.
func decodeFrame(t *testing.T, b []byte) frame {
	t.Helper()
	head, body, ok := strings.Cut(string(b), "\r\n\r\n")
	var n int
	if _, err := fmt.Sscanf(head, "Content-Length: %d", &n); !ok || err != nil || n != len(body) {
		t.Fatalf("not one Content-Length frame (header %q, body %d bytes): %q", head, len(body), b)
	}
	var f frame
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		t.Fatalf("frame body %q: %v", body, err)
	}
	if f.JSONRPC != "2.0" {
		t.Errorf("jsonrpc %q, want 2.0", f.JSONRPC)
	}
	return f
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	// Mkdir's mode passes through the umask.
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// copyExecutable copies this test binary to path, mode 0755.
func copyExecutable(t *testing.T, path string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// socketPath is a socket in a folder of the test's that does not exist
// yet, so Listen or Dial makes it (t.TempDir's own folder is 0755).
func socketPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "run", "daemon.sock")
}
