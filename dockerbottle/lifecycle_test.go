package dockerbottle_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
)

var runtimes = []string{dockerbottle.RuntimeRunc, dockerbottle.RuntimeRunsc}

func TestLifecycleUnderEachRuntime(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			m := simpleManifest(t, rt)
			var steps []string
			ctx := context.Background()
			b, err := engine.Start(ctx, backend.StartSpec{Manifest: m, Agent: "sh"}, func(s backend.Step) { steps = append(steps, s.Name) })
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			bt := b.(*dockerbottle.Bottle)
			t.Cleanup(func() { bt.Close(context.Background()) }) // after a failure; Close is idempotent
			info := bt.Info()
			if want := []string{"runtime", "image", "networks", "containers", "start", "ready"}; !slices.Equal(steps, want) {
				t.Errorf("progress steps = %v, want %v", steps, want)
			}
			if info.Runtime != rt || info.RuntimeLabel != dockerbottle.RuntimeLabel(rt) {
				t.Errorf("info runtime = %q (%q), want %q", info.Runtime, info.RuntimeLabel, rt)
			}

			c := inspect(t, info.ContainerID)
			if c.HostConfig.Runtime != rt {
				t.Errorf("docker inspect shows runtime %q, want %q", c.HostConfig.Runtime, rt)
			}
			if c.Config.User != "node" || !slices.Equal(c.HostConfig.CapDrop, []string{"ALL"}) || !slices.Contains(c.HostConfig.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("agent not hardened: user %q capdrop %v securityopt %v", c.Config.User, c.HostConfig.CapDrop, c.HostConfig.SecurityOpt)
			}
			if c.HostConfig.Memory != 512<<20 || c.HostConfig.PidsLimit == nil || *c.HostConfig.PidsLimit != 256 {
				t.Errorf("limits: memory %d pids %v, want 512m and 256", c.HostConfig.Memory, c.HostConfig.PidsLimit)
			}
			if len(c.NetworkSettings.Networks) != 1 {
				t.Errorf("agent is on %d networks, want the internal one only: %v", len(c.NetworkSettings.Networks), c.NetworkSettings.Networks)
			}
			proxy := "HTTPS_PROXY=http://" + info.ProxyAddr
			if !slices.Contains(c.Config.Env, proxy) || !slices.Contains(c.Config.Env, "NO_PROXY=localhost,127.0.0.1") {
				t.Errorf("agent env %v lacks %s and NO_PROXY", c.Config.Env, proxy)
			}
			if host, _, _ := strings.Cut(info.ProxyAddr, ":"); strings.Trim(host, "0123456789.") != "" {
				t.Errorf("proxy address %q is not an IP address", info.ProxyAddr)
			}

			if out := mustRun(t, bt, "id", "-un"); strings.TrimSpace(out) != "node" {
				t.Errorf("exec runs as %q, want node", out)
			}
			if _, code := run(t, bt, "sh", "-c", "exit 7"); code != 7 {
				t.Errorf("exit code = %d, want 7", code)
			}

			// A TTY exec: input reaches the process, resize changes its size.
			p, err := bt.Exec(ctx, backend.ExecSpec{Argv: []string{"bash", "--norc", "-i"}, Tty: true, Cols: 100, Rows: 30})
			if err != nil {
				t.Fatalf("tty exec: %v", err)
			}
			defer p.Close()
			if _, err := p.Write([]byte("stty size; echo sum=$((40+2))\n")); err != nil {
				t.Fatal(err)
			}
			if out, err := readUntil(p, "sum=42", 20*time.Second); err != nil || !strings.Contains(out, "30 100") {
				t.Fatalf("tty output %q (err %v), want size 30 100 and sum=42", out, err)
			}
			if err := p.Resize(ctx, 120, 40); err != nil {
				t.Fatal(err)
			}
			p.Write([]byte("stty size; exit 3\n"))
			if out, err := readUntil(p, "40 120", 20*time.Second); err != nil {
				t.Fatalf("after resize: %q (err %v)", out, err)
			}
			if code, err := p.Wait(ctx); err != nil || code != 3 {
				t.Errorf("tty exec exit = %d (err %v), want 3", code, err)
			}

			// Copy-in: a file and a folder, owned by the agent user.
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "note.txt"), []byte("hello"), 0o640)
			os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o755)
			os.WriteFile(filepath.Join(dir, "tree", "sub", "a.txt"), []byte("abc"), 0o644)
			if n, err := bt.CopyIn(ctx, filepath.Join(dir, "note.txt"), "/home/node/workspace/note.txt"); err != nil || n != 5 {
				t.Fatalf("copy file: %d bytes, %v", n, err)
			}
			if n, err := bt.CopyIn(ctx, filepath.Join(dir, "tree"), "/home/node/workspace/copied"); err != nil || n != 3 {
				t.Fatalf("copy folder: %d bytes, %v", n, err)
			}
			out := mustRun(t, bt, "stat", "-c", "%U %a %n", "note.txt", "copied", "copied/sub/a.txt")
			want := "node 640 note.txt\nnode 755 copied\nnode 644 copied/sub/a.txt\n"
			if out != want {
				t.Errorf("copied files:\n%s\nwant:\n%s", out, want)
			}
			if _, err := bt.CopyIn(ctx, filepath.Join(dir, "missing"), "/tmp/x"); !errors.Is(err, backend.ErrInvalid) {
				t.Errorf("copying a missing host path: %v, want ErrInvalid", err)
			}
			if _, err := bt.CopyIn(ctx, filepath.Join(dir, "note.txt"), "relative/x"); !errors.Is(err, backend.ErrInvalid) {
				t.Errorf("copying to a relative path: %v, want ErrInvalid", err)
			}

			if err := bt.Close(ctx); err != nil {
				t.Fatalf("close: %v", err)
			}
			assertNothingLeft(t, info.Session)
			if err := bt.Close(ctx); err != nil {
				t.Errorf("second close: %v", err)
			}
			if _, err := bt.Exec(ctx, backend.ExecSpec{Argv: []string{"true"}}); !errors.Is(err, backend.ErrClosed) {
				t.Errorf("exec after close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestAutoRuntimeChoosesGVisorWhenRegistered(t *testing.T) {
	needEngine(t)
	ctx := context.Background()
	has, err := engine.HasRunsc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !has {
		t.Fatal("runsc is not registered with the daemon; run scripts/setup.sh (CI never runs without gVisor)")
	}
	plan, err := engine.Plan(ctx, backend.StartSpec{Manifest: simpleManifest(t, "auto"), Agent: "sh"})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Runtime != dockerbottle.RuntimeRunsc || plan.RuntimeLabel != "runsc (gVisor)" {
		t.Errorf("plan runtime = %q (%q), want runsc (gVisor)", plan.Runtime, plan.RuntimeLabel)
	}
}

func TestUnpinnedNameTakenGetsSuffix(t *testing.T) {
	needEngine(t)
	agent := "sh"
	m := simpleManifest(t, "runc")
	name := "bottle-test-" + strings.ToLower(t.Name()[:4]) + "-" + time.Now().Format("150405.000")
	name = strings.ReplaceAll(name, ".", "")
	first := startBottle(t, backend.StartSpec{Manifest: m, Agent: agent, ContainerName: name})
	if first.Info().Container != name {
		t.Fatalf("pinned name: got %q, want %q", first.Info().Container, name)
	}
	// An unpinned bottle's base name is bottle-AGENT; take it, then start
	// another.
	a := startBottle(t, backend.StartSpec{Manifest: m, Agent: agent})
	b := startBottle(t, backend.StartSpec{Manifest: m, Agent: agent})
	base := "bottle-" + agent
	if !strings.HasPrefix(a.Info().Container, base) || !strings.HasPrefix(b.Info().Container, base+"-") || a.Info().Container == b.Info().Container {
		t.Errorf("unpinned names %q and %q, want %s and %s-N", a.Info().Container, b.Info().Container, base, base)
	}

	_, err := engine.Start(context.Background(), backend.StartSpec{Manifest: m, Agent: agent, ContainerName: name, Session: "pinnedtaken1"}, nil)
	if !errors.Is(err, backend.ErrNameTaken) || !strings.Contains(err.Error(), name) {
		t.Fatalf("pinned taken name: %v, want ErrNameTaken naming %s", err, name)
	}
	assertNothingLeft(t, "pinnedtaken1")
}

// Cancelling at each step stands for any failure there: the teardown path
// is the same. A missing image is a real failure in the image step.
func TestFailureAtEachStepLeavesNothing(t *testing.T) {
	needEngine(t)
	m := simpleManifest(t, "runc")
	for i, stepName := range []string{"runtime", "image", "networks", "containers", "start", "ready"} {
		t.Run("cancel at "+stepName, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			session := "failstep" + string(rune('a'+i))
			_, err := engine.Start(ctx, backend.StartSpec{Manifest: m, Agent: "sh", Session: session}, func(s backend.Step) {
				if s.Name == stepName {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("start cancelled at %s: %v, want context.Canceled", stepName, err)
			}
			assertNothingLeft(t, session)
		})
	}
	t.Run("missing image", func(t *testing.T) {
		t.Parallel()
		bad := parseManifest(t, "agents: {sh: {bottle: b}}\nbottles: {b: {image: \"bottle/no-such-image:1\"}}\n", nil)
		_, err := engine.Start(context.Background(), backend.StartSpec{Manifest: bad, Agent: "sh", Session: "failimage"}, nil)
		if !errors.Is(err, backend.ErrImage) || !strings.Contains(err.Error(), "bottle/no-such-image:1") {
			t.Fatalf("missing image: %v, want ErrImage naming it", err)
		}
		assertNothingLeft(t, "failimage")
	})
	t.Run("unknown agent", func(t *testing.T) {
		_, err := engine.Start(context.Background(), backend.StartSpec{Manifest: m, Agent: "nope", Session: "failagent"}, nil)
		if !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "sh") {
			t.Fatalf("unknown agent: %v, want ErrInvalid listing the known agents", err)
		}
		assertNothingLeft(t, "failagent")
	})
}
