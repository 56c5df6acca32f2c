package dockerbottle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/bottle-dev/bottle/backend"
)

// TestCopyIntoARunningBottleIsSeenInside copies as a user would after
// looking around in a terminal: under gVisor the sandbox caches what it
// listed, and a copy that went around it was missing or stale inside.
func TestCopyIntoARunningBottleIsSeenInside(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			bt := startBottle(t, backend.StartSpec{Manifest: simpleManifest(t, rt), Agent: "sh"})
			ctx := context.Background()
			mustRun(t, bt, "sh", "-c", `printf 'the old content, longer than the new' >old.md && printf 'old tmp' >/tmp/old.txt`)
			mustRun(t, bt, "sh", "-c", `ls -la . /tmp && stat old.md /tmp/old.txt && cat old.md /tmp/old.txt`)

			host := t.TempDir()
			write := func(name, content string, mode os.FileMode) string {
				p := filepath.Join(host, name)
				if err := os.WriteFile(p, []byte(content), mode); err != nil {
					t.Fatal(err)
				}
				return p
			}
			notes := "# Notes\n\nCopied while the folder was listed.\n..."
			copies := []struct {
				from, to, content string
				mode              os.FileMode
			}{
				{write("new-notes.md", notes, 0o644), "/home/node/workspace/new-notes.md", notes, 0o644},
				{write("old.md", "new", 0o600), "/home/node/workspace/old.md", "new", 0o600},
				{write("fresh.txt", "fresh in tmp", 0o640), "/tmp/fresh.txt", "fresh in tmp", 0o640},
				{write("old.txt", "tmp!", 0o644), "/tmp/old.txt", "tmp!", 0o644},
			}
			for _, c := range copies {
				n, err := bt.CopyIn(ctx, c.from, c.to)
				if err != nil || n != int64(len(c.content)) {
					t.Fatalf("copy to %s: %d bytes, %v; want %d", c.to, n, err, len(c.content))
				}
			}
			for _, c := range copies {
				got := mustRun(t, bt, "sh", "-c", `stat -c '%U %a %s' "$0" && wc -c <"$0" && cat "$0" && echo &&
					if [ $(($(date +%s) - $(stat -c %Y "$0"))) -lt 600 ]; then echo dated now; else echo dated $(stat -c %y "$0"); fi`, c.to)
				want := fmt.Sprintf("node %o %d\n%d\n%s\ndated now\n", c.mode.Perm(), len(c.content), len(c.content), c.content)
				if got != want {
					t.Errorf("inside the bottle, %s is\n%q\nwant\n%q", c.to, got, want)
				}
			}
			if out := mustRun(t, bt, "ls", "/home/node/workspace", "/tmp"); !strings.Contains(out, "new-notes.md") || !strings.Contains(out, "fresh.txt") {
				t.Errorf("ls does not list the copies:\n%s", out)
			}
		})
	}
}

// TestCopyToABadPathIsTheRequestsFault: a destination the bottle cannot
// take is bad input naming containerPath, and the bottle lives on; only a
// container that is really gone is reported gone.
func TestCopyToABadPathIsTheRequestsFault(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			bt := startBottle(t, backend.StartSpec{Manifest: simpleManifest(t, rt), Agent: "sh"})
			ctx := context.Background()
			host := t.TempDir()
			file := filepath.Join(host, "x.md")
			if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			mustRun(t, bt, "sh", "-c", `printf file >plain && mkdir folder && touch folder/keep`)

			// Missing parents are made, owned by the agent user.
			if _, err := bt.CopyIn(ctx, file, "/home/node/workspace/docs/deep/x.md"); err != nil {
				t.Fatalf("copy into missing folders: %v", err)
			}
			if out := mustRun(t, bt, "stat", "-c", "%U %a %s %n", "docs", "docs/deep", "docs/deep/x.md"); !strings.HasPrefix(out, "node 755 ") || !strings.Contains(out, "docs\nnode 755 ") || !strings.HasSuffix(out, "docs/deep\nnode 644 1 docs/deep/x.md\n") {
				t.Errorf("made parents:\n%s", out)
			}

			for _, to := range []string{
				"/home/node/workspace/plain/x.md", // a parent that is a file
				"/home/node/workspace/folder",     // a file onto a folder
				"/etc/x.md",                       // a folder the agent may not write
				"/proc/x.md",
			} {
				_, err := bt.CopyIn(ctx, file, to)
				var field *backend.FieldError
				if !errors.Is(err, backend.ErrInvalid) || !errors.As(err, &field) || field.Field != "containerPath" {
					t.Errorf("copy to %s: %v; want ErrInvalid naming containerPath", to, err)
				}
				if errors.Is(err, backend.ErrBottleGone) || errors.Is(err, backend.ErrEngineUnavailable) {
					t.Errorf("copy to %s says the bottle is lost: %v", to, err)
				}
			}
			if out := mustRun(t, bt, "cat", "plain"); out != "file" {
				t.Errorf("after the refused copies, plain holds %q", out)
			}

			// Now the container goes: that, and only that, is a lost bottle.
			if err := engine.Client().ContainerRemove(ctx, bt.Info().ContainerID, container.RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := bt.CopyIn(ctx, file, "/home/node/workspace/y.md"); !errors.Is(err, backend.ErrBottleGone) {
				t.Errorf("copy into a removed container: %v, want ErrBottleGone", err)
			}
			if _, err := bt.Exec(ctx, backend.ExecSpec{Argv: []string{"true"}}); !errors.Is(err, backend.ErrBottleGone) {
				t.Errorf("exec in a removed container: %v, want ErrBottleGone", err)
			}
		})
	}
}
