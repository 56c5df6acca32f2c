package dockerbottle_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
)

func TestGCRemovesOnlyOrphans(t *testing.T) {
	needEngine(t)
	ctx := context.Background()
	live, err := dockerbottle.CurrentOwner()
	if err != nil {
		t.Fatal(err)
	}
	dead := live
	dead.ID, dead.PID, dead.Start = "deadbeef0000", 1, "0" // pid 1 never started at tick 0 in our namespace
	elsewhere := dead
	elsewhere.Host = "another-machine"
	unowned := map[string]string{dockerbottle.LabelSession: "gcunowned"}
	made := map[string]string{}
	for name, labels := range map[string]map[string]string{
		"gcdead":      dead.Labels("gcdead", "test"),
		"gclive":      live.Labels("gclive", "test"),
		"gcunowned":   unowned,
		"gcelsewhere": elsewhere.Labels("gcelsewhere", "test"),
	} {
		resp, err := engine.Client().NetworkCreate(ctx, "bottle-test-"+name, network.CreateOptions{Labels: labels, Internal: true})
		if err != nil {
			t.Fatal(err)
		}
		made[name] = resp.ID
		t.Cleanup(func() { engine.Client().NetworkRemove(context.Background(), resp.ID) })
	}

	listed, err := engine.GC(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	sessions := func(rs []dockerbottle.Resource) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Session)
		}
		return out
	}
	got := sessions(listed)
	if !slices.Contains(got, "gcdead") || !slices.Contains(got, "gcunowned") || slices.Contains(got, "gclive") || slices.Contains(got, "gcelsewhere") {
		t.Fatalf("dry run lists sessions %v, want gcdead and gcunowned but not gclive nor gcelsewhere (another machine's server on a shared engine)", got)
	}
	if _, err := engine.Client().NetworkInspect(ctx, made["gcdead"], network.InspectOptions{}); err != nil {
		t.Fatalf("dry run removed something: %v", err)
	}

	if _, err := engine.GC(ctx, false); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"gcdead": false, "gcunowned": false, "gclive": true, "gcelsewhere": true} {
		_, err := engine.Client().NetworkInspect(ctx, made[name], network.InspectOptions{})
		if exists := err == nil; exists != want {
			t.Errorf("after gc, network of %s exists = %v, want %v", name, exists, want)
		}
	}
}

func TestBuiltImageIsCachedByContentLessDockerignore(t *testing.T) {
	needEngine(t)
	ctx := context.Background()
	files := map[string]string{
		"ctx/Dockerfile":      "ARG BASE\nFROM ${BASE}\nCOPY . /ctx/\n",
		"ctx/.dockerignore":   "# build output\nscratch\n*.log\n",
		"ctx/marker":          "one\n",
		"ctx/scratch/big.bin": "not for the image\n",
		"ctx/debug.log":       "not for the image\n",
	}
	m := parseManifest(t, "agents: {sh: {bottle: built, command: [bash]}}\nbottles:\n  built:\n    runtime: runc\n    build: {context: ctx, args: {BASE: \""+baseImage+"\"}}\n", files)
	start := func() string {
		b, err := engine.Start(ctx, backend.StartSpec{Manifest: m, Agent: "sh"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(ctx)
		if out := mustRun(t, b, "cat", "/ctx/marker"); out == "" {
			t.Fatal("built image lacks /ctx/marker")
		}
		got := strings.Fields(mustRun(t, b, "ls", "-A", "/ctx"))
		if want := []string{".dockerignore", "Dockerfile", "marker"}; !slices.Equal(got, want) {
			t.Fatalf("the build context sent did not follow .dockerignore: /ctx holds %q, want %q", got, want)
		}
		return b.Info().Image
	}
	first := start()
	t.Cleanup(func() { engine.Client().ImageRemove(context.Background(), first, image.RemoveOptions{}) })
	before, err := engine.Client().ImageInspect(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Dir(m.Bottles["built"].Build.Context + "/")
	if err := os.WriteFile(filepath.Join(ctxDir, "debug.log"), []byte("changed, and ignored\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if second := start(); second != first {
		t.Errorf("a context unchanged but for an ignored file built a new image: %s then %s", first, second)
	}
	after, err := engine.Client().ImageInspect(ctx, first)
	if err != nil || after.Created != before.Created {
		t.Errorf("image was rebuilt: created %s then %s (%v)", before.Created, after.Created, err)
	}

	if err := os.WriteFile(filepath.Join(ctxDir, "marker"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := start()
	t.Cleanup(func() { engine.Client().ImageRemove(context.Background(), third, image.RemoveOptions{}) })
	if third == first {
		t.Errorf("changed context reused image %s", first)
	}
	// The cache keeps one image a repository: the first build is gone.
	if _, err := engine.Client().ImageInspect(ctx, first); err == nil {
		t.Errorf("the outdated image %s is still on the engine", first)
	}
}
