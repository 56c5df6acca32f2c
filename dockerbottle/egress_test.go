package dockerbottle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
)

const labelTest = "dev.bottle.test"

func buildTestImage(tag string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))})
		tw.Write(data)
	}
	tw.Close()
	resp, err := engine.Client().ImageBuild(context.Background(), &buf, build.ImageBuildOptions{
		Tags: []string{tag}, Labels: map[string]string{labelTest: "1"}, NetworkMode: "none", Remove: true, ForceRemove: true,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil)
}

func removeTestImages(ctx context.Context) {
	imgs, _ := engine.Client().ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", labelTest))})
	for _, i := range imgs {
		engine.Client().ImageRemove(ctx, i.ID, image.RemoveOptions{Force: true, PruneChildren: true})
	}
}

func TestEgressOnlyThroughTheSidecar(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			audit := &auditLog{}
			// The upstreams live on a private Docker subnet: the proxy's SSRF
			// guard refuses them unless the manifest trusts them.
			m := egressManifest(t, rt, "allow: [upstream.test, secure.test]\ntrusted: [upstream.test, secure.test]", nil)
			bt := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh", OnEgress: audit.add})
			session := bt.Info().Session
			ip := startNetprobe(t, session, "upstream.test")
			startNetprobe(t, session, "secure.test")
			startNetprobe(t, session, "denied.test")

			t.Run("allowlisted name over plain HTTP", func(t *testing.T) {
				out := mustRun(t, bt, "curl", "-sS", "--max-time", "20", "http://upstream.test/hello")
				if out != "netprobe: GET /hello\n" {
					t.Errorf("got %q", out)
				}
				audit.waitFor(t, func(r egress.Record) bool {
					return r.Host == "upstream.test" && r.Decision == "allow" && r.Session == session
				})
			})
			t.Run("allowlisted name over CONNECT", func(t *testing.T) {
				out := mustRun(t, bt, "curl", "-sS", "-k", "--max-time", "20", "https://secure.test/tls")
				if out != "netprobe: GET /tls\n" {
					t.Errorf("got %q", out)
				}
				audit.waitFor(t, func(r egress.Record) bool {
					return r.Method == "CONNECT" && r.Host == "secure.test" && r.Decision == "allow"
				})
			})
			t.Run("name not on the list gets 403 and an audit line", func(t *testing.T) {
				out := mustRun(t, bt, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "http://denied.test/")
				if out != "403" {
					t.Errorf("status %q, want 403", out)
				}
				audit.waitFor(t, func(r egress.Record) bool {
					return r.Host == "denied.test" && r.Decision == "deny" && r.Rule != ""
				})
				if _, code := run(t, bt, "curl", "-sS", "-k", "--max-time", "20", "https://denied.test/"); code == 0 {
					t.Error("CONNECT to a name not on the list succeeded")
				}
				audit.waitFor(t, func(r egress.Record) bool {
					return r.Method == "CONNECT" && r.Host == "denied.test" && r.Decision == "deny"
				})
			})
			t.Run("direct connection to the upstream fails", func(t *testing.T) {
				out, code := run(t, bt, "curl", "-sS", "--noproxy", "*", "--max-time", "5", "http://"+ip+"/")
				if code == 0 {
					t.Errorf("direct connection to %s succeeded: %q", ip, out)
				}
			})
			// upstream.test resolves for the sidecar (the proxied requests above
			// reached it) and deb.debian.org resolves on the host (set-up
			// fetched from it): neither may resolve for the agent.
			t.Run("names do not resolve", func(t *testing.T) {
				for _, name := range []string{"upstream.test", "deb.debian.org"} {
					if out, code := run(t, bt, "getent", "hosts", name); code == 0 {
						t.Errorf("%s resolved inside the bottle: %q", name, out)
					}
				}
			})
		})
	}
}

func TestProvisioningOwnersAndModes(t *testing.T) {
	needEngine(t)
	env.set(t, "CLAUDE_BOTTLE_OAUTH_TOKEN", "sk-ant-oat01-test-token-must-not-leak")
	env.set(t, "PASSED_THROUGH", "from-the-host")
	cwd := t.TempDir()
	os.WriteFile(filepath.Join(cwd, "main.go"), []byte("package main\n"), 0o644)
	os.MkdirAll(filepath.Join(cwd, ".git", "refs"), 0o755)
	os.WriteFile(filepath.Join(cwd, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
	m := parseManifest(t, fmt.Sprintf(`
agents:
  sh:
    bottle: plain
    command: [bash]
    prompt_file: prompt.md
    skills: [skills/review]
bottles:
  plain:
    image: %s
    runtime: runc
    pass_env: [PASSED_THROUGH]
    env_file: secrets.env
    ssh:
      - {host: git.test, port: 22, user: git, key: keys/id_test, known_hosts: keys/known_hosts}
`, baseImage), map[string]string{
		"prompt.md":              "be careful\n",
		"skills/review/SKILL.md": "# review\n",
		"keys/id_test":           "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n",
		"keys/known_hosts":       "git.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake\n",
		"secrets.env":            "FROM_ENV_FILE=env-file-secret-value\n",
	})
	bt := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh", Cwd: cwd, CopyGit: true})

	out := mustRun(t, bt, "stat", "-c", "%U:%G %a %n",
		"/home/node/.claude-bottle-prompt.txt",
		"/home/node/.claude/skills/review/SKILL.md",
		"/home/node/.ssh", "/home/node/.ssh/id_bottle_0", "/home/node/.ssh/config",
		"/home/node/workspace/main.go", "/home/node/workspace/.git", "/home/node/workspace/.git/HEAD")
	want := `node:node 600 /home/node/.claude-bottle-prompt.txt
node:node 644 /home/node/.claude/skills/review/SKILL.md
node:node 700 /home/node/.ssh
node:node 600 /home/node/.ssh/id_bottle_0
node:node 600 /home/node/.ssh/config
node:node 644 /home/node/workspace/main.go
node:node 755 /home/node/workspace/.git
node:node 644 /home/node/workspace/.git/HEAD
`
	if out != want {
		t.Errorf("provisioned files:\n%s\nwant:\n%s", out, want)
	}
	if got := mustRun(t, bt, "cat", "/home/node/.claude-bottle-prompt.txt"); got != "be careful\n" {
		t.Errorf("prompt = %q", got)
	}
	sshConfig := mustRun(t, bt, "cat", "/home/node/.ssh/config")
	if !strings.Contains(sshConfig, "ProxyCommand nc -X connect -x "+bt.Info().ProxyAddr+" %h %p") {
		t.Errorf("ssh config does not go through the sidecar:\n%s", sshConfig)
	}

	// Secrets reach the process, never the container's configuration.
	got := mustRun(t, bt, "sh", "-c", "echo $CLAUDE_CODE_OAUTH_TOKEN $PASSED_THROUGH $FROM_ENV_FILE")
	if got != "sk-ant-oat01-test-token-must-not-leak from-the-host env-file-secret-value\n" {
		t.Errorf("exec env = %q", got)
	}
	_, raw, err := engine.Client().ContainerInspectWithRaw(context.Background(), bt.Info().ContainerID, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"sk-ant-oat01-test-token-must-not-leak", "from-the-host", "env-file-secret-value"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("docker inspect of the agent shows %q", secret)
		}
	}
}
