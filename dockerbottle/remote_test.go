package dockerbottle_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/backend/backendtest"
	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/dockerhost"
)

// The engine "elsewhere": the same daemon reached as another machine's
// would be, over TCP with TLS (the listener and certificates that
// scripts/setup.sh gives it) and over SSH (an sshd in a container that
// reaches the engine's socket). Through each, the conformance suite runs
// (start, exec with and without a pty, copy in and out, egress allowed and
// refused, the agent kept from the upstream's address, close, nothing
// left), and no bottle container has a host path mounted. A missing
// listener fails these tests, it never skips them.

// The TLS listener, unless the environment names another.
func testTLSHost() (host, certs string) {
	host, certs = os.Getenv("BOTTLE_TEST_TLS_HOST"), os.Getenv("BOTTLE_TEST_TLS_CERTS")
	if host == "" {
		host = "tcp://127.0.0.1:2376"
	}
	if certs == "" {
		certs = "/etc/bottle/test-tls/client"
	}
	return host, certs
}

func TestRemoteEngineOverTLS(t *testing.T) {
	needEngine(t)
	host, certs := testTLSHost()
	remote := remoteEngine(t, map[string]string{"DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": certs},
		"the engine's TLS listener "+host+" (scripts/setup.sh makes it: run it again with no bottle open)")
	checkRemote(t, remote, host, runtimes...)
}

func TestRemoteEngineOverSSH(t *testing.T) {
	needEngine(t)
	env := sshEngineEnd(t)
	remote := remoteEngine(t, env, "the engine through the test's sshd")
	checkRemote(t, remote, env["DOCKER_HOST"], dockerbottle.RuntimeRunc)
}

// remoteEngine connects to the engine vars names (set in the process
// environment for the test, as a user would) with the harness's sidecar
// binary, and closes it when the test ends.
func remoteEngine(t *testing.T, vars map[string]string, what string) *dockerbottle.Engine {
	t.Helper()
	for _, k := range []string{"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "SSH_AUTH_SOCK", dockerhost.EnvSSHKey, dockerhost.EnvSSHKnownHosts} {
		t.Setenv(k, vars[k])
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := dockerbottle.New(ctx, dockerbottle.Options{
		ProxyBinary: filepath.Join(workDir, "bottle-rpc"), // built by needEngine
		Getenv:      env.get,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("reaching %s: %v", what, err)
	}
	t.Cleanup(func() {
		if left := ownedBy(t, e); len(left) > 0 {
			t.Errorf("the tests left resources on the engine through %s:\n%s", what, strings.Join(left, "\n"))
		}
		e.Close()
	})
	return e
}

// checkRemote runs the conformance suite through e under each runtime,
// then checks a bottle's plan and mounts.
func checkRemote(t *testing.T, e *dockerbottle.Engine, name string, rts ...string) {
	for _, rt := range rts {
		t.Run("conformance/"+rt, func(t *testing.T) {
			backendtest.Run(t, conformanceHarness(t, e, rt))
		})
	}
	t.Run("the plan names the engine", func(t *testing.T) {
		plan, err := e.Plan(context.Background(), backend.StartSpec{Manifest: simpleManifest(t, "runc"), Agent: "sh"})
		if err != nil {
			t.Fatal(err)
		}
		if plan.Engine != name {
			t.Errorf("plan.Engine = %q, want %q", plan.Engine, name)
		}
	})
	t.Run("no host path mounted", func(t *testing.T) {
		checkNoHostMounts(t, e)
	})
}

func TestNoBottleContainerHasAHostPathMount(t *testing.T) {
	needEngine(t)
	if os.Getenv("DOCKER_HOST") == "" {
		plan, err := engine.Plan(context.Background(), backend.StartSpec{Manifest: simpleManifest(t, "runc"), Agent: "sh"})
		if err != nil {
			t.Fatal(err)
		}
		if plan.Engine != dockerhost.Local {
			t.Errorf("plan on this machine's socket: engine %q, want %q", plan.Engine, dockerhost.Local)
		}
	}
	checkNoHostMounts(t, engine)
}

// checkNoHostMounts starts a bottle under each runtime on e and checks
// that neither its agent nor its sidecar has a bind mount (the DNS guard,
// gone before the agent starts, is checked by
// TestUnitNoContainerMountsAHostPath).
func checkNoHostMounts(t *testing.T, e *dockerbottle.Engine) {
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			b, err := e.Start(ctx, backend.StartSpec{Manifest: simpleManifest(t, rt), Agent: "sh"}, nil)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			defer b.Close(context.Background())
			session := b.Info().Session
			for _, id := range []string{b.Info().ContainerID, "bottle-" + session + "-egress-proxy"} {
				c, err := e.Client().ContainerInspect(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if len(c.HostConfig.Binds) > 0 {
					t.Errorf("%s binds host paths: %v", c.Name, c.HostConfig.Binds)
				}
				for _, m := range c.Mounts {
					if m.Type == mount.TypeBind {
						t.Errorf("%s mounts host path %s at %s", c.Name, m.Source, m.Destination)
					}
				}
			}
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// ownedBy lists what e made and did not remove.
func ownedBy(t *testing.T, e *dockerbottle.Engine) []string {
	t.Helper()
	res, err := e.Resources(context.Background())
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range res {
		if r.Owner == e.Owner().ID {
			out = append(out, "  "+r.Kind+" "+r.Name+" (bottle "+r.Session+")")
		}
	}
	return out
}

// sshEngineEnd runs the far end of an ssh:// engine for the test: sshd
// from the git host image, root's key made by the test, the engine's
// socket mounted in (this container is the test's stand-in for another
// machine, not a bottle), its port published on loopback. It returns the
// environment that reaches the engine through it, known_hosts written by
// the test.
func sshEngineEnd(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	cli := engine.Client()
	if _, err := cli.ImageInspect(ctx, sshdImage); err != nil {
		t.Fatalf("the SSH server image %s is missing: run scripts/setup.sh (%v)", sshdImage, err)
	}
	userKey, userPub := newSSHKey(t, "bottle-test@client")
	hostKey, hostPub := newSSHKey(t, "engine-host")
	resp, err := cli.ContainerCreate(ctx, &container.Config{
		Image:        sshdImage,
		Entrypoint:   []string{"/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_engine_config"},
		ExposedPorts: nat.PortSet{"22/tcp": {}},
		Labels:       map[string]string{labelTest: "1"},
	}, &container.HostConfig{
		Runtime:      dockerbottle.RuntimeRunc,
		Mounts:       []mount.Mount{{Type: mount.TypeBind, Source: dockerhost.DefaultSocket, Target: dockerhost.DefaultSocket}},
		PortBindings: nat.PortMap{"22/tcp": {{HostIP: "127.0.0.1"}}},
	}, &network.NetworkingConfig{}, nil, "")
	if err != nil {
		t.Fatalf("creating the SSH server: %v", err)
	}
	t.Cleanup(func() {
		if err := cli.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("removing the SSH server: %v", err)
		}
	})
	config := `Port 22
HostKey /etc/ssh/engine_host_ed25519_key
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers root
AllowStreamLocalForwarding yes
UsePAM no
LogLevel VERBOSE
`
	buf := sshdFiles("engine", config, hostKey, "root", userPub)
	if err := cli.CopyToContainer(ctx, resp.ID, "/", buf, container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("configuring the SSH server: %v", err)
	}
	if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting the SSH server: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(containerLogs(t, resp.ID), "Server listening"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the SSH server did not start: %s", containerLogs(t, resp.ID))
		}
	}
	c, err := cli.ContainerInspect(ctx, resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	ports := c.NetworkSettings.Ports["22/tcp"]
	if len(ports) == 0 {
		t.Fatalf("the SSH server's port is not published: %v", c.NetworkSettings.Ports)
	}
	port := ports[0].HostPort
	dir := t.TempDir()
	keyFile, known := filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(keyFile, userKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(known, []byte("[127.0.0.1]:"+port+" "+hostPub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"DOCKER_HOST":               "ssh://root@127.0.0.1:" + port,
		dockerhost.EnvSSHKey:        keyFile,
		dockerhost.EnvSSHKnownHosts: known,
	}
}
