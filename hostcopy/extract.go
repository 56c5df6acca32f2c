package hostcopy

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// kind is what this extraction made at a path.
type kind byte

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
)

// dirMeta is the mode and time a folder gets once everything in it is
// written: while extracting every folder stays 0700 so that it can be
// filled even when the archive says 0500.
type dirMeta struct {
	mode  uint32
	mtime time.Time
}

// extractor extracts one archive into a fresh folder, the root descriptor.
// Paths in it are relative to root: "top" for the archive's NAME,
// "top/REL" for NAME/REL.
type extractor struct {
	root    int
	limit   int64
	written int64
	umask   uint32
	top     string // the first entry's cleaned name
	made    map[string]kind
	dirs    map[string]dirMeta
	// The parent folder of the previous entry, kept open: a tar lists a
	// folder's files one after the other.
	cacheDir string
	cacheFd  int
}

func (x *extractor) closeCache() {
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
		x.cacheFd = -1
	}
}

func (x *extractor) run(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := x.entry(ctx, tr, hdr); err != nil {
			return err
		}
	}
	if x.top == "" {
		return errors.New("the archive holds no entries: is the path in the bottle right?")
	}
	return x.finishDirs()
}

// place maps an entry's name to its path under root.
func (x *extractor) place(name string) (string, error) {
	clean, err := relPath(name)
	if err != nil {
		return "", err
	}
	if x.top == "" {
		x.top = clean
		return topPath, nil
	}
	var rel string
	switch {
	case clean == x.top:
		return topPath, nil
	case x.top == ".":
		rel = clean
	case strings.HasPrefix(clean, x.top+"/"):
		rel = clean[len(x.top)+1:]
	default:
		return "", unsafeErr(name, fmt.Sprintf("is not under the archive's top entry %s", quoteName(x.top)))
	}
	return topPath + "/" + rel, nil
}

func (x *extractor) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	name := hdr.Name
	p, err := x.place(name)
	if err != nil {
		return err
	}
	if p != topPath && x.made[topPath] != kindDir {
		return unsafeErr(name, fmt.Sprintf("lies under %s, which is not a folder", quoteName(x.top)))
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if k, ok := x.made[p]; ok && !(isDir && k == kindDir) {
		return unsafeErr(name, "appears twice in the archive")
	}
	dirFd, base, err := x.parent(name, p)
	if err != nil {
		return err
	}
	mtime := hdr.ModTime
	switch hdr.Typeflag {
	case tar.TypeDir:
		if _, ok := x.made[p]; !ok {
			if err := unix.Mkdirat(dirFd, base, 0o700); err != nil {
				return x.fsErr(name, err)
			}
			x.made[p] = kindDir
		}
		x.dirs[p] = dirMeta{mode: x.perm(hdr.Mode, true), mtime: mtime}
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(ctx, tr, hdr, dirFd, base, p)
	case tar.TypeSymlink:
		// The target is kept verbatim and never read or resolved here.
		if err := unix.Symlinkat(hdr.Linkname, dirFd, base); err != nil {
			return x.fsErr(name, err)
		}
		x.made[p] = kindSymlink
		return setTime(dirFd, base, mtime)
	case tar.TypeLink:
		return x.hardLink(hdr, dirFd, base, p)
	case tar.TypeChar, tar.TypeBlock:
		return unsafeErr(name, "is a device: only files, folders and symlinks are copied out")
	case tar.TypeFifo:
		return unsafeErr(name, "is a fifo: only files, folders and symlinks are copied out")
	default:
		return unsafeErr(name, fmt.Sprintf("has tar type %q: only files, folders and symlinks are copied out", hdr.Typeflag))
	}
}

// file writes a regular file's content. The size is checked against the
// limit before the file is made, so a 2 GiB (sparse) entry over a 1 MiB
// limit writes nothing.
func (x *extractor) file(ctx context.Context, tr *tar.Reader, hdr *tar.Header, dirFd int, base, p string) error {
	if hdr.Size < 0 || hdr.Size > x.limit-x.written {
		return fmt.Errorf("%w: entry %s holds %d bytes, which passes the limit of %d bytes of file content (maxBytes)", ErrTooLarge, quoteName(hdr.Name), hdr.Size, x.limit)
	}
	fd, err := unix.Openat(dirFd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return x.fsErr(hdr.Name, err)
	}
	x.made[p] = kindFile
	n, err := io.Copy(fdWriter{ctx: ctx, fd: fd}, io.LimitReader(tr, hdr.Size))
	x.written += n
	if err == nil && n != hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = unix.Fchmod(fd, x.perm(hdr.Mode, false))
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("entry %s: %w", quoteName(hdr.Name), err)
	}
	return setTime(dirFd, base, hdr.ModTime)
}

// hardLink links to a file made earlier by this extraction (checked in
// made, so never to a symlink, a folder or anything on the host): linkat
// without AT_SYMLINK_FOLLOW, from descriptors walked with O_NOFOLLOW.
func (x *extractor) hardLink(hdr *tar.Header, dirFd int, base, p string) error {
	target, err := x.place(hdr.Linkname)
	if err != nil {
		return unsafeErr(hdr.Name, "is a hard link to a name outside the archive's top entry")
	}
	if x.made[target] != kindFile {
		return unsafeErr(hdr.Name, "is a hard link to something that is not a file earlier in the archive")
	}
	// The target's folder is opened on its own: dirFd may be the cached
	// descriptor that parent replaces.
	tdir, tbase := path.Split(target)
	tfd, err := x.walk(hdr.Name, strings.TrimSuffix(tdir, "/"), false)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	if err := unix.Linkat(tfd, tbase, dirFd, base, 0); err != nil {
		return x.fsErr(hdr.Name, err)
	}
	x.made[p] = kindFile
	return nil
}

// parent returns an open descriptor of p's folder (owned by the cache: do
// not close it) and p's last component.
func (x *extractor) parent(name, p string) (int, string, error) {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return x.root, base, nil
	}
	if dir == x.cacheDir && x.cacheFd >= 0 {
		return x.cacheFd, base, nil
	}
	fd, err := x.walk(name, dir, true)
	if err != nil {
		return -1, "", err
	}
	x.closeCache()
	x.cacheDir, x.cacheFd = dir, fd
	return fd, base, nil
}

// walk opens folder dir under root one component at a time, never
// following a symlink (O_NOFOLLOW on every component). With create, a
// missing folder is made (some tars list a file before its folder).
func (x *extractor) walk(name, dir string, create bool) (int, error) {
	fd, err := unix.Dup(x.root)
	if err != nil || dir == "" {
		return fd, err
	}
	sofar := ""
	for _, c := range strings.Split(dir, "/") {
		sofar = path.Join(sofar, c)
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, c, 0o700); err == nil {
				x.made[sofar] = kindDir
				x.dirs[sofar] = dirMeta{mode: x.perm(0o755, true)}
				next, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, x.fsErr(name, err)
		}
		fd = next
	}
	return fd, nil
}

// fsErr turns the errors that a walk through a symlink or a file gives
// into ErrUnsafe, and names the entry on the others.
func (x *extractor) fsErr(name string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return unsafeErr(name, "would be written through a symlink or a file")
	case errors.Is(err, unix.EEXIST):
		return unsafeErr(name, "appears twice in the archive")
	}
	return fmt.Errorf("entry %s: %w", quoteName(name), err)
}

// perm keeps the permission bits only (no setuid, setgid or sticky),
// applies the umask, and keeps what the owner needs to use and remove what
// was copied.
func (x *extractor) perm(mode int64, dir bool) uint32 {
	m := uint32(mode) & 0o777 &^ x.umask
	if dir {
		return m | 0o700
	}
	return m | 0o400
}

// finishDirs gives folders their modes and times once everything in them
// is written (writing a file changes its folder's time). The order does
// not matter: every folder keeps rwx for its owner, and neither chmod nor
// utimensat of a folder changes its parent's time.
func (x *extractor) finishDirs() error {
	x.closeCache()
	for p, d := range x.dirs {
		dir, base := path.Split(p)
		dirFd, err := x.walk(p, strings.TrimSuffix(dir, "/"), false)
		if err != nil {
			return err
		}
		err = finishDir(dirFd, base, d)
		unix.Close(dirFd)
		if err != nil {
			return fmt.Errorf("folder %s: %w", quoteName(p), err)
		}
	}
	return nil
}

func finishDir(dirFd int, base string, d dirMeta) error {
	fd, err := unix.Openat(dirFd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = unix.Fchmod(fd, d.mode)
	unix.Close(fd)
	if err != nil {
		return err
	}
	return setTime(dirFd, base, d.mtime)
}

// setTime sets the modification (and access) time of the entry itself,
// never of what a symlink points to. A zero time is left alone.
func setTime(dirFd int, base string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(dirFd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// fdWriter writes to a descriptor and stops when ctx is done.
type fdWriter struct {
	ctx context.Context
	fd  int
}

func (w fdWriter) Write(b []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	for n < len(b) {
		m, err := unix.Write(w.fd, b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}
