package dockerhost

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is an SSH server in the test that forwards
// direct-streamlocal@openssh.com channels to unix sockets on this machine,
// as OpenSSH's sshd does, and counts its live connections.
type sshServer struct {
	addr    string
	hostKey ssh.Signer

	mu    sync.Mutex
	conns int
	paths []string
}

func startSSHServer(t *testing.T, authorized ssh.PublicKey) *sshServer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), authorized.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("not authorized")
	}}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &sshServer{addr: l.Addr().String(), hostKey: hostKey}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c, cfg)
		}
	}()
	return s
}

func (s *sshServer) live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *sshServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conns--
		s.mu.Unlock()
	}()
	go ssh.DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			var msg struct {
				Path      string
				Reserved0 string
				Reserved1 uint32
			}
			if nc.ChannelType() != "direct-streamlocal@openssh.com" || ssh.Unmarshal(nc.ExtraData(), &msg) != nil {
				nc.Reject(ssh.UnknownChannelType, "no")
				continue
			}
			s.mu.Lock()
			s.paths = append(s.paths, msg.Path)
			s.mu.Unlock()
			up, err := net.Dial("unix", msg.Path)
			if err != nil {
				nc.Reject(ssh.ConnectionFailed, err.Error())
				continue
			}
			ch, creqs, err := nc.Accept()
			if err != nil {
				up.Close()
				continue
			}
			go ssh.DiscardRequests(creqs)
			go func() {
				io.Copy(ch, up)
				ch.CloseWrite()
			}()
			go func() {
				io.Copy(up, ch)
				up.(*net.UnixConn).CloseWrite()
			}()
		}
	}()
	sc.Wait()
}

// sshClient is a client's key file and public key.
type sshClient struct {
	dir, key string
	pub      ssh.PublicKey
}

func newSSHClient(t *testing.T) sshClient {
	t.Helper()
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return sshClient{dir: dir, key: key, pub: signer.PublicKey()}
}

// env is the environment that reaches socket through srv with c's key,
// srv's address recorded in known_hosts with hostKey.
func (c sshClient) env(t *testing.T, srv *sshServer, hostKey ssh.PublicKey, socket string) map[string]string {
	t.Helper()
	known := filepath.Join(c.dir, "known_hosts")
	if err := os.WriteFile(known, []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"DOCKER_HOST":    "ssh://tester@" + srv.addr + socket,
		"HOME":           c.dir,
		EnvSSHKey:        c.key,
		EnvSSHKnownHosts: known,
	}
}

// echoSocket serves, on a unix socket, an echo that writes "bye" after its
// client's half-close.
func echoSocket(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "echo.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.Write([]byte("bye"))
			}()
		}
	}()
	return path
}

func dialerFor(t *testing.T, env map[string]string) *sshDialer {
	t.Helper()
	tgt, err := Parse(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return newSSHDialer(*tgt.ssh)
}

// TestSSHChannelBehavesAsASocket: bytes both ways, a half-close that
// still gets the answer, deadlines, and the SSH connection closed with
// its last channel.
func TestSSHChannelBehavesAsASocket(t *testing.T) {
	cl := newSSHClient(t)
	srv := startSSHServer(t, cl.pub)
	sock := echoSocket(t)
	d := dialerFor(t, cl.env(t, srv, srv.hostKey.PublicKey(), sock))
	ctx := context.Background()

	c, err := d.dial(ctx, "unix", "ignored")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := d.dial(ctx, "unix", "ignored")
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.live(); n != 1 {
		t.Errorf("two channels over %d SSH connections, want 1", n)
	}
	srv.mu.Lock()
	got := srv.paths
	srv.mu.Unlock()
	if len(got) != 2 || got[0] != sock {
		t.Errorf("channels opened to %q, want %s", got, sock)
	}
	c2.Close()

	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past its deadline: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	if _, err := c.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	echo, err := io.ReadAll(c)
	if err != nil || string(echo) != "hello bye" {
		t.Errorf("after a half-close: %q (%v), want the echo then bye", echo, err)
	}
	c.Close()
	waitFor(t, "the SSH connection to close with its last channel", func() bool { return srv.live() == 0 })

	// A new dial makes a new connection.
	c, err = d.dial(ctx, "unix", "ignored")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "the second SSH connection to close", func() bool { return srv.live() == 0 })

	if _, err := dialerFor(t, cl.env(t, srv, srv.hostKey.PublicKey(), "/no/such.sock")).dial(ctx, "unix", "x"); !errors.Is(err, ErrSSH) || !strings.Contains(err.Error(), "/no/such.sock") {
		t.Errorf("a missing far socket: %v, want ErrSSH naming it", err)
	}
	waitFor(t, "the SSH connection of a failed channel to close", func() bool { return srv.live() == 0 })
}

// TestSSHRefusals: the host key is checked, never accepted on first use,
// and a refused key says what was offered.
func TestSSHRefusals(t *testing.T) {
	cl := newSSHClient(t)
	srv := startSSHServer(t, cl.pub)
	sock := echoSocket(t)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(otherPriv)

	t.Run("a changed host key", func(t *testing.T) {
		err := dialerFor(t, cl.env(t, srv, other.PublicKey(), sock)).connect(context.Background())
		if !errors.Is(err, ErrSSH) || !strings.Contains(err.Error(), "not the one") {
			t.Errorf("connect: %v, want a host key mismatch", err)
		}
	})
	t.Run("an unknown host", func(t *testing.T) {
		env := cl.env(t, srv, srv.hostKey.PublicKey(), sock)
		os.WriteFile(env[EnvSSHKnownHosts], []byte("[other.example]:22 "+string(ssh.MarshalAuthorizedKey(srv.hostKey.PublicKey()))), 0o600)
		err := dialerFor(t, env).connect(context.Background())
		if !errors.Is(err, ErrSSH) || !strings.Contains(err.Error(), "is not in") {
			t.Errorf("connect: %v, want an unknown host", err)
		}
	})
	t.Run("no known_hosts", func(t *testing.T) {
		env := cl.env(t, srv, srv.hostKey.PublicKey(), sock)
		env[EnvSSHKnownHosts] = filepath.Join(t.TempDir(), "none")
		if err := dialerFor(t, env).connect(context.Background()); !errors.Is(err, ErrSSH) || !strings.Contains(err.Error(), "record") {
			t.Errorf("connect: %v, want the missing known_hosts named", err)
		}
	})
	t.Run("a key the server refuses", func(t *testing.T) {
		stranger := newSSHClient(t)
		err := dialerFor(t, stranger.env(t, srv, srv.hostKey.PublicKey(), sock)).connect(context.Background())
		if !errors.Is(err, ErrSSH) || !strings.Contains(err.Error(), "refused every key") || !strings.Contains(err.Error(), stranger.key) {
			t.Errorf("connect: %v, want the refusal naming the key", err)
		}
	})
	t.Run("no key at all", func(t *testing.T) {
		env := cl.env(t, srv, srv.hostKey.PublicKey(), sock)
		delete(env, EnvSSHKey)
		if err := dialerFor(t, env).connect(context.Background()); !errors.Is(err, ErrSSH) || !strings.Contains(err.Error(), "no SSH key") {
			t.Errorf("connect: %v, want no key", err)
		}
	})
	waitFor(t, "every refused connection to end", func() bool { return srv.live() == 0 })
}

// TestConnectOverSSH: the Docker client's requests reach an Engine API on
// the far socket, and closing the client ends the SSH connection.
func TestConnectOverSSH(t *testing.T) {
	cl := newSSHClient(t)
	srv := startSSHServer(t, cl.pub)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		fmt.Fprint(w, "OK")
	})}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })

	env := cl.env(t, srv, srv.hostKey.PublicKey(), sock)
	cli, tgt, err := Connect(context.Background(), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if tgt.Transport != SSH || tgt.Name != "ssh://tester@"+srv.addr+sock {
		t.Errorf("target %q over %q", tgt.Name, tgt.Transport)
	}
	p, err := cli.Ping(context.Background())
	if err != nil || p.APIVersion != "1.41" {
		t.Fatalf("ping over SSH: %+v, %v", p, err)
	}
	cli.Close()
	waitFor(t, "the SSH connection to close with the client", func() bool { return srv.live() == 0 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
