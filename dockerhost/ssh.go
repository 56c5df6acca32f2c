package dockerhost

// ssh:// reaches the engine's unix socket on the far host through OpenSSH's
// "direct-streamlocal@openssh.com" channel (what `ssh -L local:/remote.sock`
// uses), one channel per Engine API connection over one SSH connection.
// The Docker CLI instead runs `docker system dial-stdio` on the far host, a
// process per connection; this needs no docker CLI there (the tests' SSH
// server has none) and no process per exec, only an sshd that allows
// stream-local forwarding (OpenSSH's default) and a login that may open the
// socket. The host key is checked against known_hosts, never accepted on
// first use: whoever holds the engine holds the agent and its secrets.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshTarget is an ssh:// address and what logs in with it.
type sshTarget struct {
	user, addr string // addr is host:port
	socket     string // the engine's socket on the far host
	agentSock  string // SSH_AUTH_SOCK, may be empty
	keyFiles   []string
	keyNamed   bool // keyFiles came from EnvSSHKey: a missing one is an error
	knownHosts string
}

func parseSSH(raw string, getenv func(string) string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("DOCKER_HOST=%q: %w", raw, err)
	}
	if u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" {
		return Target{}, fmt.Errorf("DOCKER_HOST=%q: want ssh://[USER@]HOST[:PORT][/SOCKET]", raw)
	}
	if _, hasPassword := u.User.Password(); hasPassword {
		return Target{}, fmt.Errorf("DOCKER_HOST: a password in an ssh:// address is not used: put the key in ssh-agent, in ~/.ssh, or name it in %s", EnvSSHKey)
	}
	home, err := homeDir(getenv)
	if err != nil {
		return Target{}, err
	}
	t := sshTarget{
		user:       u.User.Username(),
		addr:       u.Host,
		socket:     DefaultSocket,
		agentSock:  getenv("SSH_AUTH_SOCK"),
		knownHosts: filepath.Join(home, ".ssh", "known_hosts"),
	}
	if u.Port() == "" {
		t.addr = net.JoinHostPort(u.Hostname(), "22")
	}
	// A path names the far engine's socket (a rootless engine's
	// /run/user/UID/docker.sock); the Docker CLI takes none.
	if u.Path != "" && u.Path != "/" {
		t.socket = u.Path
	}
	if t.user == "" {
		cur, err := user.Current()
		if err != nil {
			return Target{}, fmt.Errorf("DOCKER_HOST=%q names no user and this one is unknown (%w): write ssh://USER@HOST", raw, err)
		}
		t.user = cur.Username
	}
	if k := getenv(EnvSSHKey); k != "" {
		t.keyFiles, t.keyNamed = []string{k}, true
	} else {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			t.keyFiles = append(t.keyFiles, filepath.Join(home, ".ssh", n))
		}
	}
	if k := getenv(EnvSSHKnownHosts); k != "" {
		t.knownHosts = k
	}
	name := (&url.URL{Scheme: "ssh", User: u.User, Host: u.Host, Path: u.Path}).String()
	return Target{Name: name, Transport: SSH, host: "unix://" + t.socket, ssh: &t}, nil
}

// sshDialer opens Engine API connections over one SSH connection, made
// again when it is lost. The SSH connection is closed when its last
// channel is, so that a closed client leaves no connection behind (the
// Docker client's Close only closes its idle connections).
type sshDialer struct {
	target sshTarget

	mu   sync.Mutex
	conn *sshConn // nil: none, or lost
}

// sshConn is one SSH connection and how many channels it carries.
type sshConn struct {
	client *ssh.Client
	lost   chan struct{} // closed when the connection ends
	open   int
}

func newSSHDialer(t sshTarget) *sshDialer { return &sshDialer{target: t} }

// connect opens the SSH connection unless one is up, and leaves it open
// for the first dial.
func (d *sshDialer) connect(ctx context.Context) error {
	c, err := d.reserve(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	c.open--
	d.mu.Unlock()
	return nil
}

// reserve counts one more channel on the SSH connection, made first when
// there is none or it was lost, so that it stays open until release.
func (d *sshDialer) reserve(ctx context.Context) (*sshConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.conn; c != nil {
		select {
		case <-c.lost:
			d.conn = nil
		default:
			c.open++
			return c, nil
		}
	}
	cl, err := d.target.login(ctx)
	if err != nil {
		return nil, err
	}
	c := &sshConn{client: cl, lost: make(chan struct{}), open: 1}
	go func() {
		cl.Wait()
		close(c.lost)
	}()
	d.conn = c
	return c, nil
}

// release forgets one channel of c and closes c when it carries none.
func (d *sshDialer) release(c *sshConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.open--; c.open > 0 {
		return
	}
	c.client.Close()
	if d.conn == c {
		d.conn = nil
	}
}

// dial opens a channel to the engine's socket; network and address are
// the Docker client's idea of the host, and the target's are used instead.
// The connection is a local socket pair copied to and from the channel,
// so that deadlines and half-closes behave as on any socket (an SSH
// channel has no deadlines).
func (d *sshDialer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		c, err := d.reserve(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := c.client.DialContext(ctx, "unix", d.target.socket)
		if err == nil {
			return d.pair(c, ch)
		}
		d.release(c)
		select {
		case <-c.lost:
			if attempt == 0 {
				continue // the SSH connection had gone: once more on a new one
			}
		default:
		}
		return nil, fmt.Errorf("%w: opening %s on %s: %v", ErrSSH, d.target.socket, d.target.addr, err)
	}
}

// pair hands the caller one end of a socket pair whose other end is
// copied to and from ch, and releases c's count when both copies end.
func (d *sshDialer) pair(c *sshConn, ch net.Conn) (net.Conn, error) {
	near, far, err := socketPair()
	if err != nil {
		ch.Close()
		d.release(c)
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // to the engine; EOF is the caller's CloseWrite or Close
		defer wg.Done()
		io.Copy(ch, far)
		ch.(interface{ CloseWrite() error }).CloseWrite()
	}()
	go func() { // from the engine
		defer wg.Done()
		io.Copy(far, ch)
		far.CloseWrite()
	}()
	go func() {
		wg.Wait()
		ch.Close()
		far.Close()
		d.release(c)
	}()
	return &channelConn{UnixConn: near, ch: ch}, nil
}

// channelConn is the caller's end: closing it closes the channel too, so
// that the copy from the engine ends even when the engine sends nothing
// more.
type channelConn struct {
	*net.UnixConn
	ch net.Conn
}

func (c *channelConn) Close() error {
	err := c.UnixConn.Close()
	c.ch.Close()
	return err
}

func socketPair() (near, far *net.UnixConn, err error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("making a socket pair for an SSH channel: %w", err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "ssh-channel")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			if i == 1 {
				conns[0].Close()
			} else {
				syscall.Close(fds[1])
			}
			return nil, nil, fmt.Errorf("making a socket pair for an SSH channel: %w", err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1], nil
}

// login opens an SSH connection: the host key checked against known_hosts,
// the agent's keys offered first, then the key files.
func (t sshTarget) login(ctx context.Context) (*ssh.Client, error) {
	hostKeys, err := knownhosts.New(t.knownHosts)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v; record %s's host key there first (connect once with ssh, after checking its fingerprint)", ErrSSH, t.knownHosts, err, t.addr)
	}
	signers, agentConn, notes, err := t.signers()
	if err != nil {
		return nil, err
	}
	if agentConn != nil {
		defer agentConn.Close()
	}
	cfg := &ssh.ClientConfig{
		User:              t.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback:   hostKeys,
		HostKeyAlgorithms: knownAlgorithms(hostKeys, t.addr),
		Timeout:           30 * time.Second,
	}
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSSH, err)
	}
	// The handshake has no context of its own: a cancelled ctx closes the
	// socket under it.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	cc, chans, reqs, err := ssh.NewClientConn(raw, t.addr, cfg)
	if err != nil {
		raw.Close()
		return nil, t.loginErr(err, notes)
	}
	return ssh.NewClient(cc, chans, reqs), nil
}

// loginErr says what to do about a failed handshake.
func (t sshTarget) loginErr(err error, notes []string) error {
	var ke *knownhosts.KeyError
	switch {
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return fmt.Errorf("%w: %s's host key is not the one %s records for it (line %d): someone may be in between; "+
			"if the host's key did change, replace that line", ErrSSH, t.addr, ke.Want[0].Filename, ke.Want[0].Line)
	case errors.As(err, &ke):
		return fmt.Errorf("%w: %s is not in %s: connect once with ssh -p PORT %s@HOST, check the fingerprint it shows, and accept it",
			ErrSSH, t.addr, t.knownHosts, t.user)
	case strings.Contains(err.Error(), "unable to authenticate"):
		msg := fmt.Sprintf("%s refused every key offered for user %s (from ssh-agent and %s)", t.addr, t.user, strings.Join(t.keyFiles, ", "))
		if len(notes) > 0 {
			msg += "; " + strings.Join(notes, "; ")
		}
		return fmt.Errorf("%w: %s", ErrSSH, msg)
	}
	return fmt.Errorf("%w: %s: %v", ErrSSH, t.addr, err)
}

// signers are the agent's keys, then the key files' (a key with a
// passphrase is left to the agent, with a note saying so).
func (t sshTarget) signers() (signers []ssh.Signer, agentConn net.Conn, notes []string, err error) {
	if t.agentSock != "" {
		c, err := net.Dial("unix", t.agentSock)
		if err != nil {
			notes = append(notes, fmt.Sprintf("ssh-agent at SSH_AUTH_SOCK does not answer (%v)", err))
		} else if s, err := agent.NewClient(c).Signers(); err != nil {
			c.Close()
			notes = append(notes, fmt.Sprintf("ssh-agent's keys could not be listed (%v)", err))
		} else {
			signers, agentConn = s, c
		}
	}
	for _, f := range t.keyFiles {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) && !t.keyNamed {
			continue
		}
		if err != nil {
			return nil, agentConn, nil, fmt.Errorf("%w: reading the key %s (%s): %v", ErrSSH, f, EnvSSHKey, err)
		}
		s, err := ssh.ParsePrivateKey(b)
		var pe *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pe):
			notes = append(notes, f+" has a passphrase: add it to ssh-agent (ssh-add "+f+")")
			continue
		case err != nil:
			notes = append(notes, fmt.Sprintf("%s is not a key ssh can read (%v)", f, err))
			continue
		}
		signers = append(signers, s)
	}
	if len(signers) == 0 {
		msg := "no SSH key to log in with: start ssh-agent with your key (SSH_AUTH_SOCK), put one in ~/.ssh/id_ed25519, or name one in " + EnvSSHKey
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, "; ") + ")"
		}
		if agentConn != nil {
			agentConn.Close()
		}
		return nil, nil, nil, fmt.Errorf("%w: %s", ErrSSH, msg)
	}
	return signers, agentConn, notes, nil
}

// knownAlgorithms are the host key algorithms of the keys known_hosts
// holds for addr, so that the server is asked for a key that can be
// checked (else it may show another of its keys, and fail as unknown).
// None known: the library's defaults, and the check reports the host as
// unknown.
func knownAlgorithms(cb ssh.HostKeyCallback, addr string) []string {
	_, probe, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	signer, err := ssh.NewSignerFromKey(probe)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := cb(addr, &net.TCPAddr{}, signer.PublicKey()); !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		names := []string{k.Key.Type()}
		if names[0] == ssh.KeyAlgoRSA {
			names = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, n := range names {
			if !slices.Contains(algos, n) {
				algos = append(algos, n)
			}
		}
	}
	return algos
}
