package dockerbottle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/bottle-dev/bottle/backend"
)

// Archive writes a tar of containerPath (absolute, cleaned, not /) to w,
// its top entry named path.Base(containerPath); a symbolic link there is
// archived as the link, never followed. Under runc the engine's archive
// endpoint (what docker cp uses) is the fast way and sees the container's
// filesystem as the agent left it; under gVisor it does not see what the
// sandbox wrote, so any other runtime runs tar in the bottle. Either way
// the archive holds only what the agent user can read: the endpoint reads
// as root, so a check as the agent user runs beside it.
func (bt *Bottle) Archive(ctx context.Context, containerPath string, w io.Writer) error {
	if bt.isClosed() {
		return fmt.Errorf("%w: bottle %s is closed", backend.ErrClosed, bt.session)
	}
	if bt.info.Runtime != RuntimeRunc {
		return bt.execArchive(ctx, containerPath, w)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	checked := make(chan error, 1)
	go func() {
		err := bt.checkReadable(ctx, containerPath)
		if err != nil {
			cancel(err) // the archive is refused: stop reading it
		}
		checked <- err
	}()
	err := bt.endpointArchive(ctx, containerPath, w)
	if err != nil {
		cancel(err) // the check is moot
	}
	// The check's verdict on the path is more telling than an archive it
	// cut short.
	if cerr := <-checked; cerr != nil && (err == nil || errors.Is(cerr, backend.ErrInvalid)) {
		return cerr
	}
	return err
}

// execArchive runs tar in the bottle as the agent user.
func (bt *Bottle) execArchive(ctx context.Context, containerPath string, w io.Writer) error {
	dir, name := path.Split(containerPath)
	code, stderr, err := bt.Run(ctx, []string{"tar", "-b", "20", "-C", dir, "-cf", "-", "--", name}, nil, w)
	if err == nil && code != 0 {
		// tar skipped something (a file the agent may not read, say) or
		// found nothing: the archive is not the one asked for.
		return inBottleError("tar", containerPath, code, stderr)
	}
	return err
}

// endpointArchive copies the engine's archive of containerPath to w. The
// endpoint archives a link at containerPath as the link, and names the
// top entry after containerPath's last element.
func (bt *Bottle) endpointArchive(ctx context.Context, containerPath string, w io.Writer) error {
	rc, _, err := bt.engine.cli.CopyFromContainer(ctx, bt.agentID, containerPath)
	if errdefs.IsNotFound(err) {
		// Of the path, or of the container itself.
		if lerr := bt.lost(ctx, err); errors.Is(lerr, backend.ErrBottleGone) {
			return lerr
		}
		return missing(containerPath)
	}
	if err != nil {
		return fmt.Errorf("archiving %s: %w", containerPath, bt.lost(ctx, err))
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("archiving %s: %w", containerPath, bt.lost(ctx, err))
	}
	return nil
}

// checkReadable fails when the agent user cannot read all of
// containerPath, as tar in the bottle would. Links are skipped: tar
// archives them without reading their targets, and -readable follows them.
func (bt *Bottle) checkReadable(ctx context.Context, containerPath string) error {
	var unreadable strings.Builder
	code, stderr, err := bt.Run(ctx, []string{"find", containerPath, "!", "-type", "l", "!", "-readable", "-print", "-quit"}, nil, &unreadable)
	switch {
	case err != nil:
		return err
	case code != 0:
		return inBottleError("find", containerPath, code, stderr)
	case unreadable.Len() > 0:
		return backend.InvalidField("containerPath", "%s cannot be read by the agent user: %s", containerPath, strings.TrimSpace(unreadable.String()))
	}
	return nil
}

func missing(containerPath string) error {
	return backend.InvalidField("containerPath", "%s does not exist in the bottle", containerPath)
}

// inBottleError says why a reader in the bottle failed, naming
// containerPath when the path is the cause.
func inBottleError(what, containerPath string, code int, stderr string) error {
	msg := strings.TrimSpace(stderr)
	switch {
	case strings.Contains(msg, "No such file or directory"):
		return missing(containerPath)
	case strings.Contains(msg, "Permission denied"):
		return backend.InvalidField("containerPath", "%s cannot be read by the agent user: %s", containerPath, msg)
	}
	return fmt.Errorf("%s in the bottle exited with %d: %s", what, code, msg)
}
