package dockerbottle

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bottle-dev/bottle/backend"
)

func TestBuildContextFollowsDockerignore(t *testing.T) {
	tree := []string{"Dockerfile", "app/main.go", "app/main_test.go", "node_modules/x/index.js", "docs/a.md", "docs/keep.md", "secret.env", "sub/Dockerfile.dev"}
	tests := []struct {
		name       string
		ignore     string // "" means no .dockerignore at all
		dockerfile string
		want       []string
	}{
		{"no dockerignore sends everything", "", "Dockerfile",
			[]string{"Dockerfile", "app", "app/main.go", "app/main_test.go", "docs", "docs/a.md", "docs/keep.md", "node_modules", "node_modules/x", "node_modules/x/index.js", "secret.env", "sub", "sub/Dockerfile.dev"}},
		{"folders and globs are left out", "node_modules\n*.env\n**/*_test.go\n", "Dockerfile",
			[]string{".dockerignore", "Dockerfile", "app", "app/main.go", "docs", "docs/a.md", "docs/keep.md", "sub", "sub/Dockerfile.dev"}},
		{"an exception brings a file back from an excluded folder", "docs\n!docs/keep.md\nnode_modules\napp\nsub\nsecret.env\n", "Dockerfile",
			[]string{".dockerignore", "Dockerfile", "docs/keep.md"}},
		{"the Dockerfile and .dockerignore are always sent", "*\n", "sub/Dockerfile.dev",
			[]string{".dockerignore", "sub/Dockerfile.dev"}},
		{"comments and blank lines are not patterns", "# node_modules\n\nsecret.env\n", "Dockerfile",
			[]string{".dockerignore", "Dockerfile", "app", "app/main.go", "app/main_test.go", "docs", "docs/a.md", "docs/keep.md", "node_modules", "node_modules/x", "node_modules/x/index.js", "sub", "sub/Dockerfile.dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tree {
				writeFile(t, filepath.Join(root, f), "x")
			}
			if tt.ignore != "" {
				writeFile(t, filepath.Join(root, ".dockerignore"), tt.ignore)
			}
			files, err := buildContextFiles(root, tt.dockerfile)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				got = append(got, f.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("context holds\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}

func TestBuildContextBadDockerignoreNamesTheFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "Dockerfile"), "FROM scratch\n")
	writeFile(t, filepath.Join(root, ".dockerignore"), "[z-a]\n")
	_, err := buildContextFiles(root, "Dockerfile")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, ".dockerignore")) {
		t.Fatalf("got %v, want an error naming %s", err, filepath.Join(root, ".dockerignore"))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAWorkspaceThatCannotBeCopiedDoesNotAdviseSetup(t *testing.T) {
	e := &Engine{}
	_, err := e.workspaceImage(context.Background(), "bottle/base:bookworm", filepath.Join(t.TempDir(), "gone"), "s")
	if !errors.Is(err, backend.ErrImage) {
		t.Fatalf("got %v, want an image error", err)
	}
	var h interface{ Hint() string }
	if !errors.As(err, &h) {
		t.Fatalf("%v carries no hint of its own, so the image kind's setup.sh advice is given", err)
	}
	if strings.Contains(h.Hint(), "setup.sh") {
		t.Errorf("hint %q sends the user to setup.sh, which builds nothing this needs", h.Hint())
	}
}
