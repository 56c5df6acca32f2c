package hostcopy

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract extracts arbitrary bytes into a temp root's in/out, beside a
// folder "outside" that symlinks in the seeds point at, and checks that
// nothing outside in/out ever changes, that a failure leaves everything as
// it was, and that what was written holds only files, folders and symlinks
// without setuid, setgid or sticky bits.
func FuzzExtract(f *testing.F) {
	seeds := [][]ent{
		{dir("a/"), file("a/f", "x"), symlink("a/l", "../../outside"), file("a/l/evil", "x")},
		{dir("a/"), symlink("a/l", "../../outside"), dir("a/l/sub/"), file("a/l/sub/evil", "x")},
		{symlink("a", "../outside"), file("a/evil", "x")},
		{dir("a/"), symlink("a/secret", "../../outside/secret"), file("a/secret", "pwned")},
		{dir("a/"), symlink("a/secret", "../../outside/secret"), hardlink("a/h", "a/secret")},
		{dir("a/"), hardlink("a/h", "a/../../outside/secret")},
		{dir("a/"), file("a/../../outside/evil", "x")},
		{dir("a/"), file("b/evil", "x")},
		{file("/tmp/evil", "x")},
		{dir("a/"), withMode(file("a/suid", "x"), 0o6777), withMode(dir("a/d/"), 0o1777), hardlink("a/d/h", "a/suid")},
		{dir("a/"), special("a/null", tar.TypeChar), special("a/p", tar.TypeFifo)},
		{dir("a/"), fileOf("a/big", 4097)},
		{dir("a/"), huge("a/bomb", 2<<30)},
		{dir("./"), file("./f", "1"), file("./d/g", "2"), dir("./d/")},
		{dir("a/"), file("a/keep", "new"), dir("a/l/"), file("a/l/secret", "mine")},
	}
	for _, s := range seeds {
		data := buildTar(f, s)
		f.Add(data, false)
		f.Add(data, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, overwrite bool) {
		w := newWorkspace(t)
		if overwrite {
			// What an Overwrite merges into: a file it may replace and a
			// symlink out of it that it must not follow.
			mkdir(t, w.out, 0o755)
			write(t, filepath.Join(w.out, "keep"), "old")
			link(t, "../../outside", filepath.Join(w.out, "l"))
		}
		before := snapshot(t, w.root)
		_, err := Extract(context.Background(), bytes.NewReader(data), w.out, Options{Overwrite: overwrite, MaxBytes: 4096})
		after := snapshot(t, w.root)
		if err != nil {
			sameSnapshot(t, "after a failure", after, before)
			return
		}
		for p, desc := range before {
			if p != "in" && p != "." && !inside(p, "in/out") && after[p] != desc {
				t.Errorf("%s changed: %q, was %q", p, after[p], desc)
			}
		}
		for p := range after {
			if p != "in" && p != "." && !inside(p, "in/out") && before[p] == "" {
				t.Errorf("%s was made outside hostPath", p)
			}
		}
		err = filepath.WalkDir(w.out, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			m := info.Mode()
			if m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				t.Errorf("%s has mode %v", p, m)
			}
			if !m.IsRegular() && !m.IsDir() && m&fs.ModeSymlink == 0 {
				t.Errorf("%s is a %v", p, m.Type())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(w.out)); err != nil {
			t.Errorf("Extract succeeded and left no hostPath: %v", err)
		}
	})
}

// inside says whether rel (slash-separated, relative to the temp root) is
// dir or under it.
func inside(rel, dir string) bool {
	rel = filepath.ToSlash(rel)
	return rel == dir || len(rel) > len(dir) && rel[:len(dir)+1] == dir+"/"
}
