package dockerbottle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
)

// tarEntry is what a test checks of one archive entry.
type tarEntry struct {
	typ      byte
	linkname string
	body     string
}

// TestArchiveReadsWhatTheAgentWrote: under runc the archive comes from
// the engine's endpoint, under runsc from tar in the bottle (a stream of
// whole 10 KiB records); either way it holds a file the agent just wrote,
// is rooted at the path's last element, keeps links as links (the path
// itself included), and refuses a missing path or one the agent user
// cannot read as a field error of containerPath.
func TestArchiveReadsWhatTheAgentWrote(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			bt := startBottle(t, backend.StartSpec{Manifest: simpleManifest(t, rt), Agent: "sh"})
			fresh := mustRun(t, bt, "sh", "-c", `mkdir out && head -c 1000 /dev/urandom | base64 -w 0 > out/fresh.txt && ln -s /etc/shadow out/shadow && ln -s out top && mkdir -p closed && echo x > closed/secret && chmod 000 closed/secret && cat out/fresh.txt`)

			archive := func(t *testing.T, containerPath string) ([]byte, error) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				var buf bytes.Buffer
				err := bt.Archive(ctx, containerPath, &buf)
				return buf.Bytes(), err
			}
			entries := func(t *testing.T, b []byte) map[string]tarEntry {
				got := map[string]tarEntry{}
				tr := tar.NewReader(bytes.NewReader(b))
				for {
					h, err := tr.Next()
					if err == io.EOF {
						return got
					}
					if err != nil {
						t.Fatalf("reading the archive: %v", err)
					}
					body, _ := io.ReadAll(tr)
					got[strings.TrimSuffix(h.Name, "/")] = tarEntry{h.Typeflag, h.Linkname, string(body)}
				}
			}
			byExec := func(b []byte) bool { return len(b)%(20*512) == 0 }

			t.Run("a folder", func(t *testing.T) {
				b, err := archive(t, "/home/node/workspace/out")
				if err != nil {
					t.Fatal(err)
				}
				if exec := byExec(b); exec != (rt != dockerbottle.RuntimeRunc) {
					t.Errorf("%d bytes: made by tar in the bottle %v; want it only under %s", len(b), exec, dockerbottle.RuntimeRunsc)
				}
				got := entries(t, b)
				want := map[string]tarEntry{
					"out":           {typ: tar.TypeDir},
					"out/fresh.txt": {typ: tar.TypeReg, body: fresh},
					"out/shadow":    {typ: tar.TypeSymlink, linkname: "/etc/shadow"},
				}
				if len(got) != len(want) {
					t.Errorf("entries %v; want %v", keys(got), keys(want))
				}
				for name, w := range want {
					if g := got[name]; g != w {
						t.Errorf("%s: type %q link %q, %d bytes; want type %q link %q, %d bytes", name, g.typ, g.linkname, len(g.body), w.typ, w.linkname, len(w.body))
					}
				}
			})

			t.Run("a link is not followed", func(t *testing.T) {
				b, err := archive(t, "/home/node/workspace/top")
				if err != nil {
					t.Fatal(err)
				}
				got := entries(t, b)
				if want := (tarEntry{typ: tar.TypeSymlink, linkname: "out"}); len(got) != 1 || got["top"] != want {
					t.Errorf("entries %v; want only top, a link to out", got)
				}
			})

			for _, c := range []struct{ name, path, msg string }{
				{"missing", "/home/node/workspace/none", "does not exist in the bottle"},
				{"unreadable", "/home/node/workspace/closed", "cannot be read by the agent user"},
			} {
				t.Run(c.name, func(t *testing.T) {
					_, err := archive(t, c.path)
					var fe *backend.FieldError
					if !errors.As(err, &fe) || fe.Field != "containerPath" || !strings.Contains(err.Error(), c.path+" "+c.msg) {
						t.Errorf("Archive %s: %v; want a containerPath field error saying %q", c.path, err, c.msg)
					}
				})
			}
		})
	}
}

func keys(m map[string]tarEntry) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
