package dockerbottle

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// loaderFiles is what a dynamically linked binary needs beside it to run
// in a FROM scratch image: its ELF interpreter and every shared library it
// loads, each at the path the loader opens in the image.
type loaderFiles struct {
	// Interp is the PT_INTERP path, "" for a static binary. The kernel
	// opens it by this exact path.
	Interp string
	// Libs are the libraries' paths: the file found at each on the host
	// goes to the same path in the image.
	Libs []string
	// Dirs are the folders the libraries were found in, in search order:
	// the image's LD_LIBRARY_PATH, so the loader finds them whatever
	// folders it was built to search.
	Dirs []string
}

// libSearch is where the host's loader looks for a library by name: the
// folders of ld.so.conf and the built-in ones. A variable so tests can
// point it at a tree of their own.
var libSearch = hostLibDirs

// dynamicDeps reads the ELF headers of bin and resolves what it needs as
// the host's loader would (DT_RPATH, DT_RUNPATH, ld.so.conf, the default
// folders), following DT_NEEDED through every library. A static binary
// gives an empty loaderFiles.
func dynamicDeps(bin string) (*loaderFiles, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("reading %s for the egress sidecar: %w", bin, err)
	}
	defer f.Close()
	out := &loaderFiles{}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("reading the ELF interpreter of %s: %w", bin, err)
		}
		out.Interp = strings.TrimRight(string(b), "\x00")
	}
	if out.Interp == "" {
		return out, nil
	}
	if !path.IsAbs(out.Interp) {
		return nil, fmt.Errorf("%s names the ELF interpreter %q, which is not an absolute path", bin, out.Interp)
	}
	if _, err := os.Stat(out.Interp); err != nil {
		return nil, fmt.Errorf("the ELF interpreter of %s: %w", bin, err)
	}
	r := &resolver{class: f.Class, machine: f.Machine, system: libSearch(), seen: map[string]bool{}, out: out}
	if err := r.add(bin, f, nil); err != nil {
		return nil, err
	}
	return out, nil
}

type resolver struct {
	class   elf.Class
	machine elf.Machine
	system  []string
	seen    map[string]bool // needed names already placed: the loader loads a soname once
	out     *loaderFiles
}

// add places what obj needs, then what that needs. parentRpath is the
// DT_RPATH of the objects that loaded obj: glibc searches it for their
// dependencies too, unless obj has a DT_RUNPATH.
func (r *resolver) add(objPath string, obj *elf.File, parentRpath []string) error {
	needed, err := obj.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("reading the libraries %s needs: %w", objPath, err)
	}
	origin := filepath.Dir(objPath)
	runpath := dynPaths(obj, elf.DT_RUNPATH, origin)
	var rpath []string
	if len(runpath) == 0 {
		rpath = append(dynPaths(obj, elf.DT_RPATH, origin), parentRpath...)
	}
	for _, name := range needed {
		if r.seen[name] {
			continue
		}
		r.seen[name] = true
		found, lib, err := r.find(name, rpath, runpath)
		if err != nil {
			return fmt.Errorf("%s needs %s: %w", objPath, name, err)
		}
		err = r.add(found, lib, rpath)
		lib.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// find opens the first file that the loader would take for name: one of
// the binary's own class and machine, in search order.
func (r *resolver) find(name string, rpath, runpath []string) (string, *elf.File, error) {
	if strings.Contains(name, "/") {
		lib, err := r.open(name)
		if err != nil {
			return "", nil, err
		}
		r.out.Libs = append(r.out.Libs, name)
		return name, lib, nil
	}
	dirs := slices.Concat(rpath, runpath, r.system)
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		lib, err := r.open(p)
		if err != nil {
			continue
		}
		r.out.Libs = append(r.out.Libs, p)
		if !slices.Contains(r.out.Dirs, dir) {
			r.out.Dirs = append(r.out.Dirs, dir)
		}
		return p, lib, nil
	}
	return "", nil, fmt.Errorf("not found in %s; build bottle-rpc with CGO_ENABLED=0 for a sidecar that needs no libraries", strings.Join(dirs, ":"))
}

func (r *resolver) open(p string) (*elf.File, error) {
	lib, err := elf.Open(p)
	if err != nil {
		return nil, err
	}
	if lib.Class != r.class || lib.Machine != r.machine {
		lib.Close()
		return nil, fmt.Errorf("%s is for %v %v, not %v %v", p, lib.Class, lib.Machine, r.class, r.machine)
	}
	return lib, nil
}

// dynPaths reads a DT_RPATH or DT_RUNPATH with $ORIGIN expanded. Relative
// entries are left out: they are relative to the process's working folder,
// which in the sidecar is not the host's.
func dynPaths(f *elf.File, tag elf.DynTag, origin string) []string {
	vals, err := f.DynString(tag)
	if err != nil {
		return nil
	}
	var out []string
	for _, v := range vals {
		for _, d := range strings.Split(v, ":") {
			d = strings.NewReplacer("${ORIGIN}", origin, "$ORIGIN", origin).Replace(d)
			if path.IsAbs(d) {
				out = append(out, filepath.Clean(d))
			}
		}
	}
	return out
}

// hostLibDirs lists the folders the host's loader searches after a
// binary's own paths: those of /etc/ld.so.conf (which ld.so.cache is made
// from), then the built-in ones.
func hostLibDirs() []string {
	var dirs []string
	readLdConf("/etc/ld.so.conf", &dirs, map[string]bool{})
	for _, d := range []string{"/lib64", "/usr/lib64", "/lib", "/usr/lib"} {
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// readLdConf adds the folders an ld.so.conf names, following its include
// lines. A file that cannot be read adds nothing: the built-in folders
// still follow.
func readLdConf(name string, dirs *[]string, visited map[string]bool) {
	if visited[name] {
		return
	}
	visited[name] = true
	b, err := os.ReadFile(name)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "include":
			for _, pattern := range fields[1:] {
				if !filepath.IsAbs(pattern) {
					pattern = filepath.Join(filepath.Dir(name), pattern)
				}
				matches, _ := filepath.Glob(pattern)
				slices.Sort(matches)
				for _, m := range matches {
					readLdConf(m, dirs, visited)
				}
			}
		case fields[0] == "hwcap":
		default:
			for _, d := range fields {
				if filepath.IsAbs(d) && !slices.Contains(*dirs, filepath.Clean(d)) {
					*dirs = append(*dirs, filepath.Clean(d))
				}
			}
		}
	}
}

// contextFiles lists the interpreter and the libraries as build context
// files under prefix, with the folders above them, so COPY puts each at
// its path. Symlinks are followed: each path holds the file itself, as the
// image has none of the host's links between folders (/lib -> usr/lib).
func (l *loaderFiles) contextFiles(prefix string) []contextFile {
	paths := append([]string{l.Interp}, l.Libs...)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	var dirs []string
	for _, p := range paths {
		for d := path.Dir(p); d != "/" && !slices.Contains(dirs, d); d = path.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	// Folders first, each before what is in it.
	slices.Sort(dirs)
	var out []contextFile
	for _, d := range dirs {
		out = append(out, contextFile{Name: prefix + d, Mode: fs.ModeDir | 0o755})
	}
	for _, p := range paths {
		out = append(out, contextFile{Name: prefix + p, Host: p, Mode: 0o755})
	}
	return out
}
