package dockerbottle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/bottle-dev/bottle/backend"
)

// copyScript unpacks the tar on its input at $0 as the agent user. The
// copy goes through the sandbox itself: under gVisor the container's root
// filesystem and /tmp live in the sandbox, and what the Engine API's
// archive endpoint writes on the host after the start is not seen, or
// seen stale. Missing parents are made, as the user who names a new
// folder expects; exit 3 says the destination cannot be used.
// --no-same-owner and the agent user make every entry the agent's, -p
// keeps the modes of the tar's headers, and -m dates the files now, as a
// copy made by hand would be (the headers carry no time).
const copyScript = `mkdir -p -- "$0" && cd -- "$0" || exit 3
exec tar -x -p -m --no-same-owner -f -`

// copyErrLimit bounds what is kept of the copy's error output.
const copyErrLimit = 4 << 10

// CopyIn copies a host file or folder to an absolute container path.
func (bt *Bottle) CopyIn(ctx context.Context, hostPath, containerPath string) (int64, error) {
	containerPath = path.Clean(containerPath)
	st, err := os.Stat(hostPath)
	if err != nil {
		return 0, backend.InvalidField("hostPath", "host path: %v", err)
	}
	if bt.isClosed() {
		return 0, fmt.Errorf("%w: bottle %s is closed", backend.ErrClosed, bt.session)
	}
	name := path.Base(containerPath)
	var files []contextFile
	if st.IsDir() {
		files, err = walkDir(hostPath, name, nil)
		if err != nil {
			return 0, backend.InvalidField("hostPath", "reading %s: %v", hostPath, err)
		}
		files = append([]contextFile{{Name: name, Mode: fs.ModeDir | st.Mode().Perm()}}, files...)
	} else {
		files = []contextFile{{Name: name, Host: hostPath, Mode: st.Mode().Perm()}}
	}
	var size int64
	for _, f := range files {
		if f.Host != "" {
			fst, err := os.Stat(f.Host)
			if err != nil {
				return 0, backend.InvalidField("hostPath", "%v", err)
			}
			size += fst.Size()
		}
	}
	if err := bt.untar(ctx, path.Dir(containerPath), files); err != nil {
		return 0, err
	}
	return size, nil
}

// untar streams files as a tar into an exec of copyScript and returns once
// it exited. A failure of the copy itself (a parent that is a file, a
// folder the agent may not write, a full disk) is the request's fault and
// names containerPath; the bottle is only reported lost when it is.
func (bt *Bottle) untar(ctx context.Context, dir string, files []contextFile) error {
	e := bt.engine
	created, err := e.cli.ContainerExecCreate(ctx, bt.agentID, container.ExecOptions{
		User:         agentUser,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Env:          []string{"LC_ALL=C"},
		WorkingDir:   "/",
		Cmd:          []string{"/bin/sh", "-c", copyScript, dir},
	})
	if err != nil {
		return fmt.Errorf("copying into %s: %w", dir, bt.lost(ctx, err))
	}
	hj, err := e.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("copying into %s: %w", dir, bt.lost(ctx, err))
	}
	p := &process{bottle: bt, id: created.ID, hj: hj, out: demux(hj.Reader)}
	defer p.Close()
	// The output is read while the tar is written, so that an exec that
	// complains at length cannot stall its own input.
	outc := make(chan string, 1)
	go func() {
		var out bytes.Buffer
		_, _ = io.Copy(&out, io.LimitReader(p, copyErrLimit))
		_, _ = io.Copy(io.Discard, p)
		outc <- strings.TrimSpace(out.String())
	}()
	conn := &sendErr{w: hj.Conn}
	werr := writeTar(conn, files, agentUID, agentGID)
	if werr != nil && conn.err == nil {
		// The host side failed (a file vanished or is unreadable): what
		// reached the bottle is a truncated tar, which it refuses.
		p.Close()
		return backend.InvalidField("hostPath", "reading the files to copy: %v", werr)
	}
	if err := p.CloseInput(); err != nil && werr == nil {
		werr = err
	}
	out := <-outc
	code, err := p.Wait(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("copying into %s: %w", dir, err)
	case code == 3:
		return backend.InvalidField("containerPath", "the folder %s cannot be made or entered as the agent user: %s", dir, out)
	case code != 0:
		return backend.InvalidField("containerPath", "the bottle refused the copy into %s (exit %d): %s", dir, code, out)
	case werr != nil:
		return fmt.Errorf("copying into %s: sending the files: %w", dir, bt.lost(ctx, werr))
	}
	return nil
}

// sendErr remembers the first error of writes to the exec, to tell them
// from errors reading the host's files.
type sendErr struct {
	w   io.Writer
	err error
}

func (s *sendErr) Write(b []byte) (int, error) {
	n, err := s.w.Write(b)
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}
