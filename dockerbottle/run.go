package dockerbottle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker/docker/pkg/stdcopy"

	"github.com/bottle-dev/bottle/backend"
)

// runStderrLimit bounds what Run keeps of a process's stderr: enough for
// an error message, never a flood held in memory.
const runStderrLimit = 4 << 10

// killTimeout bounds the kill of a process whose Run was cancelled: the
// caller's context is done by then.
const killTimeout = 10 * time.Second

// Run runs argv in the bottle as the agent user, in the workspace, without
// a terminal. It goes through the sandbox like Exec, so under gVisor it
// reads what the agent sees, which the Engine API's archive endpoint does
// not. stdout and stderr come apart: stdout is the process's bytes as
// written, to out.
func (bt *Bottle) Run(ctx context.Context, argv []string, in io.Reader, out io.Writer) (int, string, error) {
	if bt.isClosed() {
		return -1, "", fmt.Errorf("%w: bottle %s is closed", backend.ErrClosed, bt.session)
	}
	if len(argv) == 0 {
		return -1, "", fmt.Errorf("%w: nothing to run: argv is empty", backend.ErrInvalid)
	}
	p, err := bt.startExec(ctx, argv, bt.execEnv(nil), false, "")
	if err != nil {
		return -1, "", err
	}

	stdin := make(chan struct{})
	go func() {
		defer close(stdin)
		if in != nil {
			// A process that exits without reading its input ends the
			// copy with an error of the closed connection; its exit code
			// says what happened.
			_, _ = io.Copy(p.hj.Conn, in)
		}
		_ = p.CloseInput()
	}()
	stderr := &headBuffer{limit: runStderrLimit}
	dst := &sendErr{w: out}
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(dst, stderr, p.hj.Reader)
		copied <- err
	}()

	var code int
	select {
	case err = <-copied:
		copied = nil
		if err == nil {
			code, err = p.Wait(ctx)
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	switch {
	case err == nil:
	case dst.err != nil:
		err = fmt.Errorf("running %q: writing its output: %w", argv[0], dst.err)
	case ctx.Err() != nil:
		err = fmt.Errorf("running %q: %w", argv[0], ctx.Err())
	default:
		err = fmt.Errorf("running %q: %w", argv[0], bt.lost(ctx, err))
	}
	if err != nil {
		// The process may still run (a cancel, a writer that failed): it is
		// ended, not left behind writing into a closed stream.
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		defer cancel()
		if kerr := p.Kill(kctx); kerr != nil {
			err = errors.Join(err, kerr)
		}
		code = -1
	}
	// Closing the connection ends both copies, so that out is not written
	// once Run returned, nor in read unless a read of its own blocks: that
	// is waited for only while ctx is live, as a cancel must return.
	p.Close()
	if copied != nil {
		<-copied
	}
	select {
	case <-stdin:
	case <-ctx.Done():
	}
	return code, stderr.String(), err
}

// headBuffer keeps the first limit bytes written to it and drops the rest,
// without failing the writer.
type headBuffer struct {
	limit int
	buf   []byte
}

func (h *headBuffer) Write(b []byte) (int, error) {
	if room := h.limit - len(h.buf); room > 0 {
		h.buf = append(h.buf, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

func (h *headBuffer) String() string { return string(h.buf) }
