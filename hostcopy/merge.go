package hostcopy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// rename is one rename the merge made, kept to undo it.
type rename struct {
	fromDir  int
	fromName string
	toDir    int
	toName   string
}

// merger moves an extracted folder into an existing one (Overwrite). Every
// change is a rename that it can undo: what is new moves in, what it
// replaces moves into the backup folder, and a failure moves all of it
// back. No path string is followed: every folder is opened with O_NOFOLLOW
// from its parent's descriptor, and a symlink on the host where the
// archive has a folder is replaced, not entered.
type merger struct {
	backupFd int
	backups  int
	fds      []int
	done     []rename
}

func (m *merger) closeFds() {
	for _, fd := range m.fds {
		unix.Close(fd)
	}
	m.fds = nil
}

// mergeAt merges folder srcName of srcDir into folder dstName of dstDir,
// shown as hostPath in errors, and undoes what it did when it fails.
func (m *merger) mergeAt(srcDir int, srcName string, dstDir int, dstName string, hostPath string) error {
	err := m.merge(srcDir, srcName, dstDir, dstName, hostPath)
	if err == nil {
		return nil
	}
	for i := len(m.done) - 1; i >= 0; i-- {
		u := m.done[i]
		if uerr := unix.Renameat(u.toDir, u.toName, u.fromDir, u.fromName); uerr != nil {
			return fmt.Errorf("%w; and undoing the merge failed at %s: %v", err, u.fromName, uerr)
		}
	}
	return err
}

func (m *merger) openDir(parent int, name string) (int, error) {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		m.fds = append(m.fds, fd)
	}
	return fd, err
}

// move renames and records the rename.
func (m *merger) move(fromDir int, fromName string, toDir int, toName string) error {
	if err := renameNoReplace(fromDir, fromName, toDir, toName); err != nil {
		return err
	}
	m.done = append(m.done, rename{fromDir: fromDir, fromName: fromName, toDir: toDir, toName: toName})
	return nil
}

func (m *merger) merge(srcParent int, srcName string, dstParent int, dstName string, shown string) error {
	src, err := m.openDir(srcParent, srcName)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	dst, err := m.openDir(dstParent, dstName)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	names, err := readNames(src)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	for _, name := range names {
		at := filepath.Join(shown, name)
		var sst, dstat unix.Stat_t
		if err := unix.Fstatat(src, name, &sst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		err := unix.Fstatat(dst, name, &dstat, unix.AT_SYMLINK_NOFOLLOW)
		srcIsDir := sst.Mode&unix.S_IFMT == unix.S_IFDIR
		dstIsDir := dstat.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case errors.Is(err, unix.ENOENT):
			err = m.move(src, name, dst, name)
		case err != nil:
		case srcIsDir && dstIsDir:
			err = m.merge(src, name, dst, name, at)
		case dstIsDir:
			return fmt.Errorf("%s: %w as a folder and the archive has a file or symlink there (remove the folder first, or choose another hostPath)", at, ErrExists)
		default:
			// A file or a symlink (moved, never followed) is replaced.
			backup := strconv.Itoa(m.backups)
			m.backups++
			if err = m.move(dst, name, m.backupFd, backup); err == nil {
				err = m.move(src, name, dst, name)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
	}
	return nil
}

// readNames lists a folder through its descriptor, sorted so that a merge
// goes the same way every time.
func readNames(dirFd int) ([]string, error) {
	fd, err := unix.Dup(dirFd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}
