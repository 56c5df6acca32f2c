package dockerbottle

import (
	"context"
	"fmt"

	"github.com/bottle-dev/bottle/backend"
)

// Runtime names as the daemon registers them.
const (
	RuntimeRunsc = "runsc"
	RuntimeRunc  = "runc"
)

// RuntimeLabel is how the preflight names a runtime to a person.
func RuntimeLabel(runtime string) string {
	if runtime == RuntimeRunsc {
		return "runsc (gVisor)"
	}
	return "runc (default)"
}

// HasRunsc says whether gVisor is registered with the daemon.
func (e *Engine) HasRunsc(ctx context.Context) (bool, error) {
	info, err := e.cli.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("asking the engine for its runtimes: %w", engineErr(err))
	}
	_, ok := info.Runtimes[RuntimeRunsc]
	return ok, nil
}

// chooseRuntime turns the manifest's runtime (auto, runsc, runc) into the
// one to use: auto takes gVisor whenever the daemon has it.
func (e *Engine) chooseRuntime(ctx context.Context, want string) (string, error) {
	if want == RuntimeRunc {
		return RuntimeRunc, nil
	}
	has, err := e.HasRunsc(ctx)
	if err != nil {
		return "", err
	}
	switch {
	case has:
		return RuntimeRunsc, nil
	case want == RuntimeRunsc:
		return "", fmt.Errorf("%w: the bottle asks for runsc (gVisor) but the daemon does not have it registered; run scripts/setup.sh, or set runtime: auto", backend.ErrRuntimeUnavailable)
	default:
		return RuntimeRunc, nil
	}
}
