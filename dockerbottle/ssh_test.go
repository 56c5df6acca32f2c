package dockerbottle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
)

// sshdImage is built by scripts/setup.sh: Debian's openssh-server layered
// on the base image, with a user git whose shell is git-shell.
const sshdImage = "bottle/sshd:bookworm"

// TestSSHThroughTheProxy: from the agent, git clone and push over SSH to a
// git host on the egress network work for the allowlisted host:22 through
// the sidecar's CONNECT, with the provisioned key and known_hosts; they
// fail for a host that is not on the list; and a tunnel in use outlives the
// proxy's timeouts.
func TestSSHThroughTheProxy(t *testing.T) {
	needEngine(t)
	t.Parallel()
	if _, err := engine.Client().ImageInspect(context.Background(), sshdImage); err != nil {
		t.Fatalf("the git host image %s is missing: run scripts/setup.sh (%v)", sshdImage, err)
	}
	userKey, userPub := newSSHKey(t, "agent@bottle")
	hostKey, hostPub := newSSHKey(t, "git-host")
	knownHosts := "git.test " + hostPub + "\nother.test " + hostPub + "\n"
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			audit := &auditLog{}
			m := parseManifest(t, fmt.Sprintf(`
agents:
  sh: {bottle: plain, command: [bash]}
bottles:
  plain:
    image: %s
    runtime: %s
    egress:
      allow: ["git.test:22"]
      trusted: [git.test, other.test]
    ssh:
      - {host: git.test, user: git, key: keys/id_ed25519, known_hosts: keys/known_hosts}
      - {host: other.test, user: git, key: keys/id_ed25519, known_hosts: keys/known_hosts}
`, baseImage, rt), map[string]string{"keys/id_ed25519": string(userKey), "keys/known_hosts": knownHosts})
			bt := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh", OnEgress: audit.add})
			session := bt.Info().Session
			startGitHost(t, session, "git.test", hostKey, userPub)
			startGitHost(t, session, "other.test", hostKey, userPub)

			const gitID = "-c user.name=agent -c user.email=agent@bottle.test"
			t.Run("push then clone then push again", func(t *testing.T) {
				out := mustRun(t, bt, "bash", "-c", `set -e
cd ~ && git init -q -b main work && cd work
echo hello > greeting && git add greeting && git `+gitID+` commit -q -m first
git push -q git.test:/srv/git/repo.git main 2>&1
cd ~ && git clone -q git.test:/srv/git/repo.git clone 2>&1 && cd clone
cat greeting
echo again >> greeting && git `+gitID+` commit -q -am second && git push -q origin main 2>&1
git ls-remote origin main | cut -f1; git rev-parse HEAD`)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) < 3 || lines[0] != "hello" || lines[len(lines)-1] != lines[len(lines)-2] {
					t.Errorf("clone and push: %q", out)
				}
				audit.waitFor(t, func(r egress.Record) bool {
					return r.Method == "CONNECT" && r.Host == "git.test" && r.Port == 22 && r.Decision == "allow" && r.Rule == "git.test:22"
				})
				closed := audit.waitFor(t, func(r egress.Record) bool {
					return r.Event == "close" && r.Host == "git.test" && r.BytesUp > 0 && r.BytesDown > 0
				})
				if closed.Reason != "" {
					t.Errorf("an SSH tunnel ended with %q", closed.Reason)
				}
			})

			t.Run("a host not on the allowlist", func(t *testing.T) {
				// Control: other.test serves SSH on the egress network.
				if out, code := runNetprobe(t, session, []string{"bottle-" + bottleLabel(session) + "-egress"}, "tcp", "other.test:22"); code != 0 {
					t.Fatalf("control: other.test does not listen: %s", out)
				}
				out := mustFail(t, bt, "git", "ls-remote", "other.test:/srv/git/repo.git")
				if !strings.Contains(out, "403") {
					t.Errorf("git ls-remote to other.test: %q, want the proxy's 403", out)
				}
				audit.refusal(t, "CONNECT", "other.test", 22, "default-deny")
			})

			t.Run("a tunnel in use outlives the proxy's timeouts", func(t *testing.T) {
				const ssh = "ssh -o ControlPath=/home/node/.ssh/cm-%C"
				tunnels := func(event string) int {
					return audit.count(func(r egress.Record) bool { return r.Host == "git.test" && r.Event == event })
				}
				before := tunnels("decision")
				mustRun(t, bt, "bash", "-c", ssh+" -o ControlMaster=yes -fN git.test")
				defer run(t, bt, "bash", "-c", ssh+" -O exit git.test")
				// The master's own record may still be on its way.
				for deadline := time.Now().Add(30 * time.Second); tunnels("decision") == before; time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the SSH master's tunnel never showed in the audit")
					}
				}
				opened, closed := tunnels("decision"), tunnels("close")
				// Quiet for longer than the proxy's request-header timeout (30 s):
				// an agent's connection idles like this between turns.
				time.Sleep(35 * time.Second)
				if out := mustRun(t, bt, "bash", "-c", ssh+" -O check git.test 2>&1"); !strings.Contains(out, "Master running") {
					t.Errorf("the SSH master is gone: %q", out)
				}
				out := mustRun(t, bt, "bash", "-c", "GIT_SSH_COMMAND='"+ssh+" -o ControlMaster=no' git ls-remote git.test:/srv/git/repo.git main")
				if !strings.Contains(out, "refs/heads/main") {
					t.Errorf("ls-remote over the kept tunnel: %q", out)
				}
				if o, c := tunnels("decision"), tunnels("close"); o != opened || c != closed {
					t.Errorf("the kept tunnel was not used: %d tunnels opened and %d closed meanwhile", o-opened, c-closed)
				}
			})
		})
	}
}

// startGitHost runs sshd from the git host image on the session's
// upstream network (upstreamNetwork) under alias, with a bare repository /srv/git/repo.git that the
// user git (shell git-shell) may read and write with userPub.
func startGitHost(t *testing.T, session, alias string, hostKey []byte, userPub string) {
	t.Helper()
	ctx := context.Background()
	netName := upstreamNetwork(t, session)
	id := createTestContainer(t, session, &container.Config{
		Image:      sshdImage,
		Entrypoint: []string{"sh", "-c", "git init -q --bare -b main /srv/git/repo.git && chown -R git:git /srv/git && exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_bottle_config"},
	}, &container.HostConfig{NetworkMode: container.NetworkMode(netName)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{alias}}}})
	sshdConfig := `Port 22
HostKey /etc/ssh/bottle_host_ed25519_key
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers git
UsePAM no
LogLevel VERBOSE
`
	buf := sshdFiles("bottle", sshdConfig, hostKey, "git", userPub)
	if err := engine.Client().CopyToContainer(ctx, id, "/", buf, container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("configuring %s: %v", alias, err)
	}
	if err := engine.Client().ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		t.Fatalf("starting %s: %v", alias, err)
	}
	// sshd logs "Server listening" once it accepts connections.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(containerLogs(t, id), "Server listening") {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %s", alias, containerLogs(t, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newSSHKey makes an Ed25519 key pair: the private key in OpenSSH's format
// (which ssh and sshd read) and the public key line.
func newSSHKey(t *testing.T, comment string) (private []byte, public string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var wirePub bytes.Buffer
	sshString(&wirePub, []byte("ssh-ed25519"))
	sshString(&wirePub, pub)

	var inner bytes.Buffer
	check := make([]byte, 4)
	rand.Read(check)
	inner.Write(check)
	inner.Write(check)
	sshString(&inner, []byte("ssh-ed25519"))
	sshString(&inner, pub)
	sshString(&inner, priv) // seed and public key, 64 bytes
	sshString(&inner, []byte(comment))
	for i := byte(1); inner.Len()%8 != 0; i++ {
		inner.WriteByte(i)
	}

	var key bytes.Buffer
	key.WriteString("openssh-key-v1\x00")
	sshString(&key, []byte("none")) // cipher
	sshString(&key, []byte("none")) // kdf
	sshString(&key, nil)            // kdf options
	binary.Write(&key, binary.BigEndian, uint32(1))
	sshString(&key, wirePub.Bytes())
	sshString(&key, inner.Bytes())
	private = pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: key.Bytes()})
	return private, "ssh-ed25519 " + base64.StdEncoding.EncodeToString(wirePub.Bytes()) + " " + comment
}

func sshString(b *bytes.Buffer, s []byte) {
	binary.Write(b, binary.BigEndian, uint32(len(s)))
	b.Write(s)
}

// sshdFiles is a tar of an SSH server's config (etc/ssh/sshd_NAME_config),
// host key (etc/ssh/NAME_host_ed25519_key) and one user's authorized key
// (etc/ssh/authorized_keys/USER), to copy into its container at /.
func sshdFiles(name, config string, hostKey []byte, user, userPub string) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data string
	}{
		{"etc/ssh/sshd_" + name + "_config", 0o644, config},
		{"etc/ssh/" + name + "_host_ed25519_key", 0o600, string(hostKey)},
		{"etc/ssh/authorized_keys/", 0o755, ""},
		{"etc/ssh/authorized_keys/" + user, 0o644, userPub + "\n"},
	} {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		tw.WriteHeader(h)
		tw.Write([]byte(f.data))
	}
	tw.Close()
	return &buf
}
