// Package hostexec is for tests only: the Run and Archive of a fake
// backend.Bottle, run on the host in a folder that plays the bottle's
// workspace.
package hostexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	osexec "os/exec"
	"path"
	"strings"

	"github.com/bottle-dev/bottle/backend"
)

// Run runs argv on the host in dir, as backend.Bottle.Run does in a
// bottle: its exit code, all of its stderr, and an error only when it
// could not run or ctx ended.
func Run(ctx context.Context, dir string, argv []string, in io.Reader, out io.Writer) (int, string, error) {
	if len(argv) == 0 {
		return -1, "", fmt.Errorf("%w: argv is empty", backend.ErrInvalid)
	}
	var stderr bytes.Buffer
	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = dir, in, out, &stderr
	err := cmd.Run()
	if exit := (*osexec.ExitError)(nil); errors.As(err, &exit) && ctx.Err() == nil {
		return exit.ExitCode(), stderr.String(), nil
	}
	if err != nil {
		return -1, stderr.String(), err
	}
	return 0, stderr.String(), nil
}

// Archive writes a tar of containerPath to w with tar on the host, as
// backend.Bottle.Archive does; a path tar does not find is the backend's
// FieldError.
func Archive(ctx context.Context, dir, containerPath string, w io.Writer) error {
	parent, name := path.Split(containerPath)
	code, stderr, err := Run(ctx, dir, []string{"tar", "-b", "20", "-C", parent, "-cf", "-", "--", name}, nil, w)
	switch {
	case err != nil:
		return err
	case strings.Contains(stderr, "No such file or directory"):
		return backend.InvalidField("containerPath", "%s does not exist in the bottle", containerPath)
	case code != 0:
		return fmt.Errorf("tar exited with %d: %s", code, stderr)
	}
	return nil
}
