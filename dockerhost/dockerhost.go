// Package dockerhost reaches a Docker engine the way the Docker CLI's
// environment names it: DOCKER_HOST (unix://, tcp:// or ssh://),
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH. It makes the Engine API client and
// says, for people, which engine that is and how it is reached. Nothing here
// assumes the engine shares this machine's files or network.
package dockerhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/client"
)

// Transport is how the engine is reached.
type Transport string

const (
	// Socket is a unix socket on this machine (the default one or another).
	Socket Transport = "local socket"
	// TLS is TCP with TLS, the server's certificate checked against
	// DOCKER_CERT_PATH's ca.pem and this client's cert.pem shown to it.
	TLS Transport = "tcp+TLS"
	// TCP is plain TCP, allowed to a loopback address only (a tunnel's
	// near end, say): the Engine API carries the agent's secrets.
	TCP Transport = "tcp"
	// SSH is an SSH connection to the engine's host that reaches the
	// engine's unix socket there (see ssh.go).
	SSH Transport = "ssh"
)

// DefaultSocket is the engine's socket on a Linux host, here or at the far
// end of an SSH connection.
const DefaultSocket = "/var/run/docker.sock"

// Local is the Name of this machine's default socket.
const Local = "local"

// Our own variables, beside the Docker CLI's.
const (
	// EnvSSHKey names the private key file for ssh:// (instead of
	// ~/.ssh/id_ed25519, id_ecdsa and id_rsa; the agent is asked first).
	EnvSSHKey = "BOTTLE_SSH_KEY"
	// EnvSSHKnownHosts names the known_hosts file for ssh:// (instead of
	// ~/.ssh/known_hosts).
	EnvSSHKnownHosts = "BOTTLE_SSH_KNOWN_HOSTS"
)

// Target is an engine as the environment names it.
type Target struct {
	// Name is what people read: Local for this machine's default socket,
	// else DOCKER_HOST without credentials (tcp://build:2376,
	// ssh://root@build).
	Name      string
	Transport Transport

	host     string // the client's host URL (unix://..., tcp://...)
	certPath string // TLS: ca.pem, cert.pem, key.pem
	ssh      *sshTarget
}

// Parse reads the engine's address from the environment through getenv,
// as the Docker CLI does, and refuses what would expose the engine: plain
// TCP to another machine, TLS without its files, a password in an ssh://
// address.
func Parse(getenv func(string) string) (Target, error) {
	raw := getenv("DOCKER_HOST")
	if raw == "" {
		raw = "unix://" + DefaultSocket
	}
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return Target{}, fmt.Errorf("DOCKER_HOST=%q: want unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]", raw)
	}
	switch scheme {
	case "unix":
		return parseUnix(raw)
	case "tcp":
		return parseTCP(raw, getenv)
	case "ssh":
		return parseSSH(raw, getenv)
	default:
		return Target{}, fmt.Errorf("DOCKER_HOST=%q: bottle reaches an engine over unix://, tcp:// (with TLS) or ssh://, not %s://", raw, scheme)
	}
}

func parseUnix(raw string) (Target, error) {
	path := strings.TrimPrefix(raw, "unix://")
	if !filepath.IsAbs(path) {
		return Target{}, fmt.Errorf("DOCKER_HOST=%q: a unix socket needs an absolute path (unix:///var/run/docker.sock)", raw)
	}
	name := raw
	if filepath.Clean(path) == DefaultSocket {
		name = Local
	}
	return Target{Name: name, Transport: Socket, host: raw}, nil
}

func parseTCP(raw string, getenv func(string) string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("DOCKER_HOST=%q: %w", raw, err)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return Target{}, fmt.Errorf("DOCKER_HOST=%q: want tcp://HOST:PORT (2376 is the engine's TLS port)", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return Target{}, fmt.Errorf("DOCKER_HOST=%q: want tcp://HOST:PORT and nothing else", raw)
	}
	t := Target{Name: "tcp://" + u.Host, host: "tcp://" + u.Host}
	certPath := getenv("DOCKER_CERT_PATH")
	// As the Docker CLI: TLS when either variable is set (any value of
	// DOCKER_TLS_VERIFY turns it on), certificates in ~/.docker by
	// default. Unlike the CLI, the server's certificate is always checked:
	// the engine runs the agent and sees its secrets.
	if getenv("DOCKER_TLS_VERIFY") == "" && certPath == "" {
		if !isLoopback(u.Hostname()) {
			return Target{}, fmt.Errorf("DOCKER_HOST=%q without TLS: the Engine API would carry the agent's secrets in the clear; "+
				"set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to a folder with ca.pem, cert.pem and key.pem, or use ssh://", raw)
		}
		t.Transport = TCP
		return t, nil
	}
	if certPath == "" {
		home, err := homeDir(getenv)
		if err != nil {
			return Target{}, fmt.Errorf("DOCKER_TLS_VERIFY is set and DOCKER_CERT_PATH is not: %w", err)
		}
		certPath = filepath.Join(home, ".docker")
	}
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if _, err := os.Stat(filepath.Join(certPath, f)); err != nil {
			return Target{}, fmt.Errorf("DOCKER_HOST=%q with TLS needs ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH (%s): %w", raw, certPath, err)
		}
	}
	t.Transport, t.certPath = TLS, certPath
	return t, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func homeDir(getenv func(string) string) (string, error) {
	if h := getenv("HOME"); h != "" {
		return h, nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home folder: %w", err)
	}
	return h, nil
}

// Connect makes an Engine API client for the engine getenv names, with
// API version negotiation (DOCKER_API_VERSION pins one). For ssh:// it
// opens the SSH connection first, so that a refused key or an unknown
// host is reported as such; it checks nothing else (the caller pings).
func Connect(ctx context.Context, getenv func(string) string) (*client.Client, Target, error) {
	t, err := Parse(getenv)
	if err != nil {
		return nil, t, err
	}
	opts := []client.Opt{client.WithHost(t.host), client.WithAPIVersionNegotiation()}
	if v := getenv("DOCKER_API_VERSION"); v != "" {
		opts = append(opts, client.WithVersion(v))
	}
	switch t.Transport {
	case TLS:
		opts = append(opts, client.WithTLSClientConfig(
			filepath.Join(t.certPath, "ca.pem"), filepath.Join(t.certPath, "cert.pem"), filepath.Join(t.certPath, "key.pem")))
	case SSH:
		d := newSSHDialer(*t.ssh)
		if err := d.connect(ctx); err != nil {
			return nil, t, err
		}
		// The host stays unix://SOCKET: no HTTP proxy applies, and every
		// connection the client makes, hijacked ones included, comes from
		// the dialer.
		opts = append(opts, client.WithDialContext(d.dial))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, t, fmt.Errorf("configuring the Docker client for %s: %w", t.Name, err)
	}
	return cli, t, nil
}

// ErrSSH marks a failure to reach the engine's host over SSH: no key, an
// unknown or changed host key, a refused login.
var ErrSSH = errors.New("ssh")
