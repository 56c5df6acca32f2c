package dockerbottle

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// BuildBottleRPC is buildBottleRPC for the engine tests.
var BuildBottleRPC = buildBottleRPC

// buildBottleRPC builds cmd/bottle-rpc with cgo on or off. A cgo build
// needs the C compiler go would use; without one there is nothing to test.
func buildBottleRPC(t *testing.T, cgo bool) string {
	t.Helper()
	env := "CGO_ENABLED=0"
	if cgo {
		cc, err := exec.Command("go", "env", "CC").Output()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := exec.LookPath(strings.TrimSpace(string(cc))); err != nil {
			// scripts/setup.sh installs gcc, so CI always runs the cgo
			// case; only a developer's machine without one may skip it.
			if os.Getenv("CI") == "true" {
				t.Fatalf("no C compiler (%s) for a cgo build: %v; scripts/setup.sh installs gcc", strings.TrimSpace(string(cc)), err)
			}
			t.Skipf("no C compiler (%s) for a cgo build: %v", strings.TrimSpace(string(cc)), err)
		}
		env = "CGO_ENABLED=1"
	}
	out := filepath.Join(t.TempDir(), "bottle-rpc")
	cmd := exec.Command("go", "build", "-o", out, "github.com/bottle-dev/bottle/cmd/bottle-rpc")
	cmd.Env = append(os.Environ(), env)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build with %s: %v\n%s", env, err, b)
	}
	return out
}

func TestACgoBuildBringsItsLoaderAndLibraries(t *testing.T) {
	bin := buildBottleRPC(t, true)
	deps, err := dynamicDeps(bin)
	if err != nil {
		t.Fatal(err)
	}
	if deps.Interp == "" {
		t.Fatalf("%s has no ELF interpreter: the cgo build is static, so this test proves nothing", bin)
	}
	t.Logf("interpreter %s, libraries %q, LD_LIBRARY_PATH %q", deps.Interp, deps.Libs, deps.Dirs)
	var libc string
	for _, l := range deps.Libs {
		if filepath.Base(l) == "libc.so.6" {
			libc = l
		}
		if _, err := os.Stat(l); err != nil {
			t.Errorf("library %s is not on the host: %v", l, err)
		}
		if !slices.Contains(deps.Dirs, filepath.Dir(l)) {
			t.Errorf("the folder of %s is not in LD_LIBRARY_PATH %q", l, deps.Dirs)
		}
	}
	if libc == "" {
		t.Fatalf("libc.so.6 is not among %q", deps.Libs)
	}
	files := deps.contextFiles("rootfs")
	var names []string
	for i, f := range files {
		names = append(names, f.Name)
		if f.Mode.IsDir() {
			continue
		}
		if parent := filepath.Dir(f.Name); !slices.ContainsFunc(files[:i], func(d contextFile) bool { return d.Name == parent }) {
			t.Errorf("%s comes before its folder %s", f.Name, parent)
		}
	}
	for _, want := range []string{"rootfs" + deps.Interp, "rootfs" + libc} {
		if !slices.Contains(names, want) {
			t.Errorf("the image lacks %s; it has %q", want, names)
		}
	}
}

func TestAStaticBuildNeedsNothingBesideIt(t *testing.T) {
	deps, err := dynamicDeps(buildBottleRPC(t, false))
	if err != nil {
		t.Fatal(err)
	}
	if deps.Interp != "" || len(deps.Libs) != 0 {
		t.Errorf("a static build needs %q and %q", deps.Interp, deps.Libs)
	}
}

func TestALibraryThatCannotBeFoundIsNamed(t *testing.T) {
	bin := buildBottleRPC(t, true)
	empty := t.TempDir()
	old := libSearch
	libSearch = func() []string { return []string{empty} }
	t.Cleanup(func() { libSearch = old })
	_, err := dynamicDeps(bin)
	if err == nil || !strings.Contains(err.Error(), "libc.so.6") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("got %v, want an error naming libc.so.6 and the static build", err)
	}
}

func TestLdSoConfIncludesAreFollowed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ld.so.conf"), "include "+filepath.Join(dir, "conf.d/*.conf")+"\n/opt/first # comment\n")
	writeFile(t, filepath.Join(dir, "conf.d/b.conf"), "/opt/b\n")
	writeFile(t, filepath.Join(dir, "conf.d/a.conf"), "# only a comment\n/opt/a\nrelative/ignored\n")
	var dirs []string
	readLdConf(filepath.Join(dir, "ld.so.conf"), &dirs, map[string]bool{})
	if want := []string{"/opt/a", "/opt/b", "/opt/first"}; !slices.Equal(dirs, want) {
		t.Errorf("got %q, want %q", dirs, want)
	}
}
