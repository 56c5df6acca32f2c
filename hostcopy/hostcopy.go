// Package hostcopy writes a tar stream that a bottle made onto the host,
// trusting nothing in it: the stream comes from `tar -cf - NAME` run inside
// a bottle whose agent may be hostile, so every name, type, mode and size in
// it is checked before anything reaches the host.
//
// How it stays inside hostPath: the archive is first extracted into a fresh
// folder that Extract makes beside hostPath (same filesystem, mode 0700),
// walking every path from that folder's descriptor one component at a time
// with O_NOFOLLOW, and creating the last component with O_EXCL (files),
// mkdirat or symlinkat, never through a path string. A symlink the archive
// planted earlier is therefore never followed, not even one planted where a
// folder should be. Only when the whole stream has been read and checked is
// the result renamed into place, so a failure (a bad entry, a tar bomb, a
// cancelled context, a truncated stream) leaves hostPath as it was. Both
// mechanisms are used on purpose: the openat walk is what makes a planted
// symlink harmless, the temporary folder is what makes a failure change
// nothing and an Overwrite merge reversible.
//
// Linux only (openat, renameat2, /proc/self/status).
package hostcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultMaxBytes is the limit on file content when Options.MaxBytes is 0:
// 1 GiB.
const DefaultMaxBytes int64 = 1 << 30

var (
	// ErrExists is returned when hostPath exists and Options.Overwrite is
	// not set, or when an Overwrite would have to replace a folder on the
	// host with a file or a symlink.
	ErrExists = errors.New("already exists")
	// ErrTooLarge is returned when the files' content passes MaxBytes.
	ErrTooLarge = errors.New("archive larger than the limit")
	// ErrUnsafe is returned for an entry that would land outside hostPath,
	// write through a symlink, or is of a type that is not copied out
	// (hard link to nothing earlier in the archive, device, fifo).
	ErrUnsafe = errors.New("unsafe archive entry")
)

// Options tune Extract.
type Options struct {
	// Overwrite lets Extract replace an existing file or symlink at
	// hostPath, or merge into an existing folder.
	Overwrite bool
	// MaxBytes caps the bytes of file content written; 0 means
	// DefaultMaxBytes.
	MaxBytes int64
}

// Longest name and name component Extract accepts: the kernel's PATH_MAX
// and NAME_MAX. Longer names could not be used on the host anyway, and a
// cap keeps a hostile megabyte-long name from costing a million openat
// calls per entry.
const (
	maxName      = 4096
	maxComponent = 255
)

// Extract writes the tar read from r to hostPath: the tar's entries are NAME
// or NAME/..., where NAME (the first entry's name: a file, a folder or a
// symlink; "." when the tar was made with `tar -cf - .`) becomes hostPath.
//
// hostPath must be absolute and its parent folder must exist. An existing
// hostPath is refused with ErrExists unless opts.Overwrite; then a file or
// symlink at hostPath is replaced (a symlink is never followed), and a
// folder is merged into: files and symlinks in it that the archive also
// holds are replaced, the rest is kept, and its folders keep their modes.
// A folder on the host is never replaced by a file (ErrExists).
//
// Symlinks are created as links with their target verbatim. A hard link is
// made only to a file earlier in the same archive; devices and fifos are
// refused (ErrUnsafe). Modes keep only the permission bits (no setuid,
// setgid or sticky), minus the process's umask, plus read for the owner on
// files and rwx for the owner on folders. Everything is owned by the
// calling user. Modification times are kept.
//
// On any error nothing changes at hostPath: what was extracted is removed,
// and an Overwrite that failed half-way moves back what it had replaced.
// Only a process killed mid-way leaves a hidden ".bottle-extract-*" folder
// beside hostPath. It returns the bytes of file content written.
func Extract(ctx context.Context, r io.Reader, hostPath string, opts Options) (int64, error) {
	if !filepath.IsAbs(hostPath) {
		return 0, fmt.Errorf("hostPath %q is not absolute: give a full path", hostPath)
	}
	hostPath = filepath.Clean(hostPath)
	parent, base := filepath.Split(hostPath)
	if base == "" {
		return 0, fmt.Errorf("hostPath %q names no file or folder", hostPath)
	}
	// The parent's own path is the caller's choice and is trusted: only
	// hostPath's last component and what lies under it are never followed.
	parentFd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("hostPath %s: its folder %s cannot be opened (create it first): %w", hostPath, parent, err)
	}
	defer unix.Close(parentFd)
	var st unix.Stat_t
	exists := true
	if err := unix.Fstatat(parentFd, base, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		exists = false
	} else if err != nil {
		return 0, fmt.Errorf("hostPath %s: %w", hostPath, err)
	}
	if exists && !opts.Overwrite {
		return 0, fmt.Errorf("hostPath %s: %w (set overwrite to replace it)", hostPath, ErrExists)
	}

	tmp, err := os.MkdirTemp(parent, ".bottle-extract-")
	if err != nil {
		return 0, fmt.Errorf("hostPath %s: cannot make a temporary folder beside it: %w", hostPath, err)
	}
	// os.RemoveAll never follows symlinks: it removes the links the
	// archive made, not what they point to.
	defer os.RemoveAll(tmp)
	tmpFd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("hostPath %s: %w", hostPath, err)
	}
	defer unix.Close(tmpFd)

	limit := opts.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	x := &extractor{root: tmpFd, limit: limit, umask: processUmask(), made: map[string]kind{}, dirs: map[string]dirMeta{}, cacheFd: -1}
	defer x.closeCache()
	if err := x.run(ctx, r); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	topDir := x.made[topPath] == kindDir

	switch {
	case !exists:
		if err := renameNoReplace(tmpFd, topPath, parentFd, base); errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return 0, fmt.Errorf("hostPath %s: %w (it appeared while extracting; set overwrite to replace it)", hostPath, ErrExists)
		} else if err != nil {
			return 0, fmt.Errorf("hostPath %s: %w", hostPath, err)
		}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR && topDir:
		m := &merger{}
		err := unix.Mkdirat(tmpFd, backupPath, 0o700)
		if err == nil {
			m.backupFd, err = m.openDir(tmpFd, backupPath)
		}
		if err == nil {
			err = m.mergeAt(tmpFd, topPath, parentFd, base, hostPath)
		}
		m.closeFds()
		if err != nil {
			return 0, err
		}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return 0, fmt.Errorf("hostPath %s: %w as a folder and the archive's %s is not one (remove the folder first, or choose another hostPath)", hostPath, ErrExists, quoteName(x.top))
	default:
		// A file or symlink (never followed: renameat moves the link
		// itself) is moved aside first, so that a failed rename can put it
		// back.
		if err := unix.Renameat(parentFd, base, tmpFd, backupPath); err != nil {
			return 0, fmt.Errorf("hostPath %s: moving the old one aside: %w", hostPath, err)
		}
		if err := unix.Renameat(tmpFd, topPath, parentFd, base); err != nil {
			if rerr := unix.Renameat(tmpFd, backupPath, parentFd, base); rerr != nil {
				return 0, fmt.Errorf("hostPath %s: %w; and putting the old one back failed (it is in %s): %v", hostPath, err, filepath.Join(tmp, backupPath), rerr)
			}
			return 0, fmt.Errorf("hostPath %s: %w", hostPath, err)
		}
	}
	return x.written, nil
}

// Names inside the temporary folder: the archive's top entry, and what an
// Overwrite moved aside.
const (
	topPath    = "top"
	backupPath = "old"
)

// renameNoReplace renames without replacing what is at the target. Where
// the filesystem lacks RENAME_NOREPLACE it checks first: a race with another
// process of the same user is then possible, a hostile archive plays no part
// in it.
func renameNoReplace(oldDir int, oldName string, newDir int, newName string) error {
	err := unix.Renameat2(oldDir, oldName, newDir, newName, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(newDir, newName, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return unix.EEXIST
	}
	return unix.Renameat(oldDir, oldName, newDir, newName)
}

// processUmask reads the umask without changing it (unix.Umask sets it for
// the whole process, racing every other goroutine that creates files).
func processUmask() uint32 {
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return uint32(m)
				}
			}
		}
	}
	return 0o022
}

// quoteName quotes an entry's name for an error, cut short: names come from
// the bottle and may be long or hold control characters.
func quoteName(name string) string {
	const most = 200
	if len(name) > most {
		return strconv.Quote(name[:most]) + "..."
	}
	return strconv.Quote(name)
}

// unsafeErr is an ErrUnsafe naming the entry.
func unsafeErr(name, why string) error {
	return fmt.Errorf("%w: entry %s %s", ErrUnsafe, quoteName(name), why)
}

// relPath checks an entry's raw name and returns it cleaned: relative, no
// "..", no component longer than NAME_MAX, not longer than PATH_MAX.
func relPath(name string) (string, error) {
	switch {
	case name == "":
		return "", unsafeErr(name, "has an empty name")
	case len(name) > maxName:
		return "", unsafeErr(name, fmt.Sprintf("has a name longer than %d bytes", maxName))
	case strings.HasPrefix(name, "/"):
		return "", unsafeErr(name, "has an absolute name")
	case strings.ContainsRune(name, 0):
		return "", unsafeErr(name, "has a NUL in its name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", unsafeErr(name, `has a ".." in its name`)
		}
		if len(c) > maxComponent {
			return "", unsafeErr(name, fmt.Sprintf("has a name component longer than %d bytes", maxComponent))
		}
	}
	return path.Clean(name), nil
}
