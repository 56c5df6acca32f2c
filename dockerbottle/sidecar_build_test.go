package dockerbottle_test

import (
	"context"
	"debug/elf"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/egress"
)

// TestTheSidecarRunsABinaryBuiltEitherWay starts a bottle whose egress
// sidecar is bottle-rpc built with cgo off (static) and on (dynamically
// linked, as go build and go install make it where a C compiler is), and
// sends a request through each.
func TestTheSidecarRunsABinaryBuiltEitherWay(t *testing.T) {
	needEngine(t)
	tests := []struct {
		name    string
		binary  func(t *testing.T) string
		dynamic bool
	}{
		{"CGO_ENABLED=0", func(*testing.T) string { return filepath.Join(workDir, "bottle-rpc") }, false},
		{"CGO_ENABLED=1", func(t *testing.T) string { return dockerbottle.BuildBottleRPC(t, true) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := tt.binary(t)
			if got := hasInterp(t, bin); got != tt.dynamic {
				t.Fatalf("%s: dynamically linked is %v, want %v", bin, got, tt.dynamic)
			}
			eng := engine
			if tt.dynamic {
				eng = engineWithProxy(t, bin)
			}
			audit := &auditLog{}
			m := egressManifest(t, dockerbottle.RuntimeRunc, "allow: [upstream.test]\ntrusted: [upstream.test]", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			b, err := eng.Start(ctx, backend.StartSpec{Manifest: m, Agent: "sh", OnEgress: audit.add}, nil)
			if err != nil {
				t.Fatalf("starting a bottle with the sidecar built %s: %v", tt.name, err)
			}
			t.Cleanup(func() {
				if err := b.Close(context.Background()); err != nil {
					t.Errorf("closing bottle: %v", err)
				}
			})
			session := b.Info().Session
			startNetprobe(t, session, "upstream.test")
			out := mustRun(t, b, "curl", "-sS", "--max-time", "20", "http://upstream.test/hello")
			if out != "netprobe: GET /hello\n" {
				t.Errorf("through the proxy: got %q", out)
			}
			audit.waitFor(t, func(r egress.Record) bool {
				return r.Host == "upstream.test" && r.Decision == "allow" && r.Session == session
			})
		})
	}
}

func hasInterp(t *testing.T, bin string) bool {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// engineWithProxy is a second engine whose sidecar is made from bin. The
// sidecar image it builds is removed when the test ends, after its bottles.
func engineWithProxy(t *testing.T, bin string) *dockerbottle.Engine {
	t.Helper()
	ctx := context.Background()
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{
		ProxyBinary: bin,
		Getenv:      env.get,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer eng.Close()
		imgs, err := eng.Client().ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", dockerbottle.LabelCache+"=bottle/egress-proxy-cgo"))})
		if err != nil {
			t.Errorf("listing the cgo sidecar images: %v", err)
			return
		}
		for _, img := range imgs {
			if _, err := eng.Client().ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
				t.Errorf("removing the cgo sidecar image %s: %v", img.ID, err)
			}
		}
	})
	return eng
}

// TestAFolderWithNothingToCopyStarts starts bottles in a new project's
// folder: an empty one, one with only .git (which is not copied unless
// asked), and one with a file, as a control.
func TestAFolderWithNothingToCopyStarts(t *testing.T) {
	needEngine(t)
	tests := []struct {
		name  string
		files []string
		want  string // ls -A of the workspace
	}{
		{"empty", nil, ""},
		{"only .git", []string{".git/HEAD"}, ""},
		{"one file", []string{"notes.md"}, "notes.md\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cwd := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(cwd, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := simpleManifest(t, dockerbottle.RuntimeRunc)
			bt := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh", Cwd: cwd})
			if got := mustRun(t, bt, "ls", "-A", "/home/node/workspace"); got != tt.want {
				t.Errorf("the workspace holds %q, want %q", got, tt.want)
			}
			if got := mustRun(t, bt, "stat", "-c", "%u:%g %a", "/home/node/workspace"); got != "1000:1000 755\n" {
				t.Errorf("the workspace is %q, want the agent's own, 1000:1000 755", got)
			}
		})
	}
}
