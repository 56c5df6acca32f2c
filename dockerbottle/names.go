package dockerbottle

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/bottle-dev/bottle/backend"
)

// maxNameSuffix is the last suffix tried for an agent container's name.
const maxNameSuffix = 99

// namesInFlight are the agent container names this server's starts are
// giving right now. Ten starts of one agent at once would otherwise each
// ask the engine for bottle-AGENT, -2, ... until one is free: 55 creates
// for ten bottles, each a round trip the engine serves one at a time. A
// start skips a name another of this server's starts is trying; the engine
// still decides, so other servers' names are found taken as before.
type namesInFlight struct {
	mu   sync.Mutex
	held map[string]bool
}

func (n *namesInFlight) claim(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.held[name] {
		return false
	}
	if n.held == nil {
		n.held = map[string]bool{}
	}
	n.held[name] = true
	return true
}

func (n *namesInFlight) release(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.held, name)
}

// nameAgent gives the agent container a name with give (a create or a
// rename): the pinned name or ErrNameTaken, else the first of
// bottle-AGENT, bottle-AGENT-2, ... that the engine takes.
func (n *namesInFlight) nameAgent(ctx context.Context, pinned, agent string, give func(ctx context.Context, name string) error) (string, error) {
	if pinned != "" {
		if err := give(ctx, pinned); err != nil {
			if cerrdefs.IsConflict(err) {
				return "", fmt.Errorf("%w: a container named %s already exists; choose another containerName or remove that container", backend.ErrNameTaken, pinned)
			}
			return "", fmt.Errorf("naming the agent container %s: %w", pinned, engineErr(err))
		}
		return pinned, nil
	}
	base := "bottle-" + agent
	for i := 1; i <= maxNameSuffix; i++ {
		name := base
		if i > 1 {
			name = base + "-" + strconv.Itoa(i)
		}
		if !n.claim(name) {
			continue
		}
		err := give(ctx, name)
		n.release(name)
		if err == nil {
			return name, nil
		}
		if !cerrdefs.IsConflict(err) {
			return "", fmt.Errorf("naming the agent container %s: %w", name, engineErr(err))
		}
	}
	return "", fmt.Errorf("%w: %s and %s-2 to %s-%d are all taken; remove some or pin a containerName", backend.ErrNameTaken, base, base, base, maxNameSuffix)
}
