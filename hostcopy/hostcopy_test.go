package hostcopy

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ent is one entry of a test archive.
type ent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
	size int64 // when set, the header's size with no content after it
}

func dir(name string) ent               { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func file(name, body string) ent        { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func symlink(name, target string) ent   { return ent{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) ent  { return ent{name: name, typ: tar.TypeLink, link: target} }
func special(name string, typ byte) ent { return ent{name: name, typ: typ, mode: 0o644} }
func withMode(e ent, mode int64) ent    { e.mode = mode; return e }
func huge(name string, size int64) ent {
	return ent{name: name, typ: tar.TypeReg, size: size, mode: 0o644}
}
func fileOf(name string, n int) ent { return file(name, strings.Repeat("x", n)) }

var mtime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// buildTar writes es as a tar. An entry with size set ends the archive
// right after its header: Extract must refuse it before reading content.
func buildTar(t testing.TB, es []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: mtime,
			Uid: 12345, Gid: 12345, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if e.size > 0 {
			hdr.Size = e.size
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshot describes every path under root (symlinks not followed): type,
// permission bits, content or link target.
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + target
		case d.IsDir():
			out[rel] = fmt.Sprintf("dir %o", info.Mode().Perm()|info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		case d.Type().IsRegular():
			body, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %o %s", info.Mode().Perm()|info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), body)
		default:
			out[rel] = "other " + info.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// workspace is a temp root holding "in" (the parent of hostPath "in/out")
// and "outside", which nothing may ever touch.
type workspace struct {
	root, in, out, outside string
}

func newWorkspace(t testing.TB) workspace {
	t.Helper()
	root := t.TempDir()
	w := workspace{root: root, in: filepath.Join(root, "in"), out: filepath.Join(root, "in", "out"), outside: filepath.Join(root, "outside")}
	for _, d := range []string{w.in, w.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(w.outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestExtractRefusesHostileArchives(t *testing.T) {
	long := strings.Repeat("d/", 2100) + "f"
	tests := []struct {
		name    string
		entries func(w workspace) []ent
		max     int64
		want    error
		wantMsg string
	}{
		{"dotdot top", func(workspace) []ent { return []ent{file("../evil", "x")} }, 0, ErrUnsafe, `"../evil"`},
		{"dotdot inside", func(workspace) []ent { return []ent{dir("a/"), file("a/../../evil", "x")} }, 0, ErrUnsafe, `".."`},
		{"dotdot that cleans inside", func(workspace) []ent { return []ent{dir("a/"), file("a/b/../c", "x")} }, 0, ErrUnsafe, `".."`},
		{"absolute", func(workspace) []ent { return []ent{file("/etc/evil", "x")} }, 0, ErrUnsafe, "absolute"},
		{"absolute inside", func(w workspace) []ent { return []ent{dir("a/"), file(w.outside+"/evil", "x")} }, 0, ErrUnsafe, "absolute"},
		{"not under top", func(workspace) []ent { return []ent{dir("a/"), file("a/ok", "x"), file("b/evil", "x")} }, 0, ErrUnsafe, "not under"},
		{"prefix but not under top", func(workspace) []ent { return []ent{dir("a/"), file("ab/evil", "x")} }, 0, ErrUnsafe, "not under"},
		{"under a top file", func(workspace) []ent { return []ent{file("a", "x"), file("a/evil", "x")} }, 0, ErrUnsafe, "not a folder"},
		{"through a planted absolute symlink", func(w workspace) []ent {
			return []ent{dir("a/"), symlink("a/l", w.outside), file("a/l/evil", "x")}
		}, 0, ErrUnsafe, "symlink"},
		{"through a planted relative symlink", func(workspace) []ent {
			return []ent{dir("a/"), symlink("a/l", "../../outside"), file("a/l/evil", "x")}
		}, 0, ErrUnsafe, "symlink"},
		{"dir through a planted symlink", func(w workspace) []ent {
			return []ent{dir("a/"), symlink("a/l", w.outside), dir("a/l/sub/")}
		}, 0, ErrUnsafe, "symlink"},
		{"deep through a planted symlink", func(w workspace) []ent {
			return []ent{dir("a/"), dir("a/b/"), symlink("a/b/l", w.outside), file("a/b/l/x/y/evil", "x")}
		}, 0, ErrUnsafe, "symlink"},
		{"symlink top then child", func(w workspace) []ent { return []ent{symlink("a", w.outside), file("a/evil", "x")} }, 0, ErrUnsafe, "not a folder"},
		{"file over a planted symlink", func(w workspace) []ent {
			return []ent{dir("a/"), symlink("a/secret", w.outside+"/secret"), file("a/secret", "pwned")}
		}, 0, ErrUnsafe, "twice"},
		{"symlink over a file", func(w workspace) []ent {
			return []ent{dir("a/"), file("a/f", "x"), symlink("a/f", w.outside)}
		}, 0, ErrUnsafe, "twice"},
		{"dir over a symlink", func(w workspace) []ent {
			return []ent{dir("a/"), symlink("a/d", w.outside), dir("a/d/")}
		}, 0, ErrUnsafe, "twice"},
		{"top twice as file", func(workspace) []ent { return []ent{file("a", "x"), file("a", "y")} }, 0, ErrUnsafe, "twice"},
		{"hard link outside", func(workspace) []ent { return []ent{dir("a/"), hardlink("a/h", "/etc/passwd")} }, 0, ErrUnsafe, "hard link"},
		{"hard link to host file by dotdot", func(workspace) []ent { return []ent{dir("a/"), hardlink("a/h", "a/../../outside/secret")} }, 0, ErrUnsafe, "hard link"},
		{"hard link to a symlink", func(w workspace) []ent {
			return []ent{dir("a/"), symlink("a/l", w.outside+"/secret"), hardlink("a/h", "a/l")}
		}, 0, ErrUnsafe, "hard link"},
		{"hard link to a later file", func(workspace) []ent { return []ent{dir("a/"), hardlink("a/h", "a/f"), file("a/f", "x")} }, 0, ErrUnsafe, "hard link"},
		{"hard link to a folder", func(workspace) []ent { return []ent{dir("a/"), dir("a/d/"), hardlink("a/h", "a/d")} }, 0, ErrUnsafe, "hard link"},
		{"hard link top", func(workspace) []ent { return []ent{hardlink("a", "/etc/passwd")} }, 0, ErrUnsafe, "hard link"},
		{"char device", func(workspace) []ent { return []ent{dir("a/"), special("a/null", tar.TypeChar)} }, 0, ErrUnsafe, "device"},
		{"block device", func(workspace) []ent { return []ent{dir("a/"), special("a/sda", tar.TypeBlock)} }, 0, ErrUnsafe, "device"},
		{"fifo", func(workspace) []ent { return []ent{dir("a/"), special("a/p", tar.TypeFifo)} }, 0, ErrUnsafe, "fifo"},
		{"fifo top", func(workspace) []ent { return []ent{special("p", tar.TypeFifo)} }, 0, ErrUnsafe, "fifo"},
		{"unknown type", func(workspace) []ent { return []ent{dir("a/"), special("a/v", 'V')} }, 0, ErrUnsafe, "type"},
		{"name too long", func(workspace) []ent { return []ent{dir("d/"), file(long, "x")} }, 0, ErrUnsafe, "longer"},
		{"component too long", func(workspace) []ent { return []ent{dir("a/"), file("a/"+strings.Repeat("n", 256), "x")} }, 0, ErrUnsafe, "longer"},
		{"one file too large", func(workspace) []ent { return []ent{dir("a/"), file("a/ok", "x"), huge("a/big", 2<<30)} }, 1 << 20, ErrTooLarge, `"a/big"`},
		{"too large in sum", func(workspace) []ent {
			return []ent{dir("a/"), fileOf("a/1", 600<<10), fileOf("a/2", 600<<10)}
		}, 1 << 20, ErrTooLarge, `"a/2"`},
		{"top file too large", func(workspace) []ent { return []ent{huge("f", 2<<30)} }, 0, ErrTooLarge, "1073741824"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorkspace(t)
			before := snapshot(t, w.root)
			n, err := Extract(context.Background(), bytes.NewReader(buildTar(t, tt.entries(w))), w.out, Options{MaxBytes: tt.max})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Extract = %d, %v; want %v", n, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "pwned") || strings.Contains(err.Error(), "xxxx") {
				t.Errorf("error %q holds file content", err)
			}
			sameSnapshot(t, "after a refused archive", snapshot(t, w.root), before)
		})
	}
}

func TestExtractFaults(t *testing.T) {
	w := newWorkspace(t)
	good := buildTar(t, []ent{dir("a/"), file("a/f", "hello")})
	// Two headers and 1000 of the 3000 bytes of a/f's content.
	truncated := buildTar(t, []ent{dir("a/"), fileOf("a/f", 3000)})[:512+512+1000]
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		data     []byte
		hostPath string
		opts     Options
		want     error
		wantMsg  string
	}{
		{"relative hostPath", context.Background(), good, "in/out", Options{}, nil, "not absolute"},
		{"root hostPath", context.Background(), good, "/", Options{}, nil, "names no file"},
		{"missing parent", context.Background(), good, filepath.Join(w.root, "nope", "out"), Options{}, nil, "create it first"},
		{"exists", context.Background(), good, w.outside, Options{}, ErrExists, "overwrite"},
		{"folder over top file", context.Background(), buildTar(t, []ent{file("f", "x")}), w.outside, Options{Overwrite: true}, ErrExists, "remove the folder"},
		{"empty archive", context.Background(), buildTar(t, nil), w.out, Options{}, nil, "no entries"},
		{"not a tar", context.Background(), []byte(strings.Repeat("garbage!", 200)), w.out, Options{}, nil, "reading the archive"},
		{"truncated", context.Background(), truncated, w.out, Options{}, nil, `"a/f"`},
		{"cancelled", cancelled, good, w.out, Options{}, context.Canceled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, w.root)
			_, err := Extract(tt.ctx, bytes.NewReader(tt.data), tt.hostPath, tt.opts)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Extract: %v; want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			sameSnapshot(t, "after a failure", snapshot(t, w.root), before)
		})
	}
}

func TestExtractWrites(t *testing.T) {
	tests := []struct {
		name    string
		entries []ent
		want    map[string]string
		written int64
		// Folders made for a file listed before them get the time they
		// were made, as with GNU tar.
		implicitDirs bool
	}{
		{"one file, setuid dropped", []ent{withMode(file("f", "hi"), 0o4755)}, map[string]string{".": "file 755 hi"}, 2, false},
		{"modes capped by umask, setgid and sticky dropped", []ent{
			withMode(dir("a/"), 0o3777), withMode(file("a/w", "w"), 0o666), withMode(file("a/none", "n"), 0o000),
			withMode(dir("a/ro/"), 0o500), withMode(file("a/ro/f", "f"), 0o2444),
		}, map[string]string{
			".": "dir 755", "w": "file 644 w", "none": "file 400 n", "ro": "dir 700", "ro/f": "file 444 f",
		}, 3, false},
		{"symlinks kept verbatim, not followed", []ent{
			dir("a/"), symlink("a/shadow", "/etc/shadow"), symlink("a/up", "../../outside/secret"), symlink("a/dangling", "nowhere"),
		}, map[string]string{
			".": "dir 755", "shadow": "link /etc/shadow", "up": "link ../../outside/secret", "dangling": "link nowhere",
		}, 0, false},
		{"symlink top", []ent{symlink("l", "/etc/shadow")}, map[string]string{".": "link /etc/shadow"}, 0, false},
		{"hard link within the archive", []ent{dir("a/"), file("a/f", "same"), dir("a/d/"), hardlink("a/d/h", "a/f")}, map[string]string{
			".": "dir 755", "f": "file 644 same", "d": "dir 755", "d/h": "file 644 same",
		}, 4, false},
		{"missing folder entries are made", []ent{dir("a/"), file("a/x/y/f", "deep")}, map[string]string{
			".": "dir 755", "x": "dir 755", "x/y": "dir 755", "x/y/f": "file 644 deep",
		}, 4, true},
		{"folder entry after its files", []ent{dir("a/"), file("a/x/f", "1"), withMode(dir("a/x/"), 0o750)}, map[string]string{
			".": "dir 755", "x": "dir 750", "x/f": "file 644 1",
		}, 1, false},
		{"tar -cf - .", []ent{dir("./"), file("./f", "1"), dir("./d/"), file("./d/g", "2")}, map[string]string{
			".": "dir 755", "f": "file 644 1", "d": "dir 755", "d/g": "file 644 2",
		}, 2, false},
		{"multi-component top", []ent{dir("src/lib/"), file("src/lib/f", "1")}, map[string]string{
			".": "dir 755", "f": "file 644 1",
		}, 1, false},
		{"dot components", []ent{dir("a/"), file("a/./b//f", "1")}, map[string]string{
			".": "dir 755", "b": "dir 755", "b/f": "file 644 1",
		}, 1, true},
		{"empty folder", []ent{dir("a/")}, map[string]string{".": "dir 755"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorkspace(t)
			outside := snapshot(t, w.outside)
			n, err := Extract(context.Background(), bytes.NewReader(buildTar(t, tt.entries)), w.out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.written {
				t.Errorf("written = %d, want %d", n, tt.written)
			}
			sameSnapshot(t, "extracted", snapshot(t, w.out), tt.want)
			sameSnapshot(t, "outside", snapshot(t, w.outside), outside)
			checkOwnedAndDated(t, w.out, !tt.implicitDirs)
			entries, err := os.ReadDir(w.in)
			if err != nil || len(entries) != 1 {
				t.Errorf("the parent holds %v (%v), want only out", entries, err)
			}
		})
	}
}

// checkOwnedAndDated checks that everything under root belongs to the
// calling user (not the archive's uid 12345) and, with dated, has the
// archive's mtime.
func checkOwnedAndDated(t *testing.T, root string, dated bool) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
			t.Errorf("%s is owned by %d:%d", p, st.Uid, st.Gid)
		}
		if dated && !info.ModTime().Equal(mtime) {
			t.Errorf("%s has mtime %v, want %v", p, info.ModTime(), mtime)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestExtractOverwrite(t *testing.T) {
	tests := []struct {
		name    string
		before  func(t *testing.T, w workspace) // makes w.out
		entries []ent
		want    map[string]string // w.out after
		wantErr error
	}{
		{"file replaces file", func(t *testing.T, w workspace) { write(t, w.out, "old") }, []ent{file("f", "new")},
			map[string]string{".": "file 644 new"}, nil},
		{"file replaces symlink, target untouched", func(t *testing.T, w workspace) { link(t, filepath.Join(w.outside, "secret"), w.out) },
			[]ent{file("f", "new")}, map[string]string{".": "file 644 new"}, nil},
		{"folder replaces symlink to a folder, not entered", func(t *testing.T, w workspace) { link(t, w.outside, w.out) },
			[]ent{dir("a/"), file("a/secret", "new")}, map[string]string{".": "dir 755", "secret": "file 644 new"}, nil},
		{"folder replaces file", func(t *testing.T, w workspace) { write(t, w.out, "old") }, []ent{dir("a/"), file("a/f", "1")},
			map[string]string{".": "dir 755", "f": "file 644 1"}, nil},
		{"merge into folder", func(t *testing.T, w workspace) {
			mkdir(t, w.out, 0o700)
			write(t, filepath.Join(w.out, "keep"), "kept")
			write(t, filepath.Join(w.out, "same"), "old")
			mkdir(t, filepath.Join(w.out, "sub"), 0o755)
			write(t, filepath.Join(w.out, "sub", "keep2"), "kept2")
			link(t, w.outside, filepath.Join(w.out, "wasLink"))
			write(t, filepath.Join(w.out, "wasFile"), "old")
		}, []ent{
			dir("a/"), file("a/same", "new"), file("a/new", "n"), dir("a/sub/"), file("a/sub/f", "s"),
			dir("a/wasLink/"), file("a/wasLink/secret", "mine"), dir("a/wasFile/"), symlink("a/l", "/etc/shadow"),
		}, map[string]string{
			".": "dir 700", "keep": "file 644 kept", "same": "file 644 new", "new": "file 644 n",
			"sub": "dir 755", "sub/keep2": "file 644 kept2", "sub/f": "file 644 s",
			"wasLink": "dir 755", "wasLink/secret": "file 644 mine", "wasFile": "dir 755", "l": "link /etc/shadow",
		}, nil},
		{"merge that meets a host folder where the archive has a file changes nothing", func(t *testing.T, w workspace) {
			mkdir(t, w.out, 0o755)
			write(t, filepath.Join(w.out, "same"), "old")
			mkdir(t, filepath.Join(w.out, "sub"), 0o755)
			mkdir(t, filepath.Join(w.out, "sub", "clash"), 0o755)
			write(t, filepath.Join(w.out, "sub", "clash", "mine"), "mine")
		}, []ent{
			dir("a/"), file("a/same", "new"), file("a/n1", "1"), file("a/n2", "2"), dir("a/sub/"), file("a/sub/n3", "3"),
			file("a/sub/clash", "x"), file("a/z", "z"),
		}, nil, ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorkspace(t)
			tt.before(t, w)
			outside := snapshot(t, w.outside)
			before := snapshot(t, w.root)
			_, err := Extract(context.Background(), bytes.NewReader(buildTar(t, tt.entries)), w.out, Options{Overwrite: true})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Extract: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				sameSnapshot(t, "after a failed overwrite", snapshot(t, w.root), before)
				return
			}
			sameSnapshot(t, "extracted", snapshot(t, w.out), tt.want)
			sameSnapshot(t, "outside", snapshot(t, w.outside), outside)
			entries, err := os.ReadDir(w.in)
			if err != nil || len(entries) != 1 {
				t.Errorf("the parent holds %v (%v), want only out", entries, err)
			}
		})
	}
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// TestExtractRealTar round-trips GNU tar's own output of a folder with
// files, a symlink out of it, a hard link and a setuid file.
func TestExtractRealTar(t *testing.T) {
	src := t.TempDir()
	proj := filepath.Join(src, "proj")
	mkdir(t, proj, 0o755)
	mkdir(t, filepath.Join(proj, "sub"), 0o750)
	write(t, filepath.Join(proj, "sub", "a.txt"), "alpha")
	write(t, filepath.Join(proj, "b.sh"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(proj, "b.sh"), 0o4755); err != nil {
		t.Fatal(err)
	}
	link(t, "/etc/shadow", filepath.Join(proj, "shadow"))
	if err := os.Link(filepath.Join(proj, "sub", "a.txt"), filepath.Join(proj, "hard")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-C", src, "-cf", "-", "proj").Output()
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkspace(t)
	if _, err := Extract(context.Background(), bytes.NewReader(out), w.out, Options{}); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, w.out)
	want := map[string]string{
		".": "dir 755", "sub": "dir 750", "sub/a.txt": "file 644 alpha", "b.sh": "file 755 #!/bin/sh\n",
		"shadow": "link /etc/shadow", "hard": "file 644 alpha",
	}
	sameSnapshot(t, "GNU tar's archive", got, want)
}

// TestExtractSparseBomb feeds GNU tar's archive of a 2 GiB sparse file
// with a 1 MiB limit: ErrTooLarge, nothing left, and the archive is
// refused at the header (the test's own tar writes a few KiB).
func TestExtractSparseBomb(t *testing.T) {
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "bomb"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), 2<<30-3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, format := range []string{"gnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			data, err := exec.Command("tar", "-C", src, "--sparse", "--format="+format, "-cf", "-", "bomb").Output()
			if err != nil {
				t.Fatal(err)
			}
			if len(data) > 1<<20 {
				t.Fatalf("tar wrote %d bytes: not sparse", len(data))
			}
			w := newWorkspace(t)
			before := snapshot(t, w.root)
			_, err = Extract(context.Background(), bytes.NewReader(data), w.out, Options{MaxBytes: 1 << 20})
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Extract: %v, want ErrTooLarge", err)
			}
			sameSnapshot(t, "after the bomb", snapshot(t, w.root), before)
		})
	}
}

func TestQuoteNameCutsLongNames(t *testing.T) {
	err := unsafeErr(strings.Repeat("n", 5000)+"\x1b[2J", "is bad")
	if len(err.Error()) > 300 || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("error is %d bytes: %q", len(err.Error()), err)
	}
}
