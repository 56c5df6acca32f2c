// Package upstreamnet is for tests: it gives a bottle a network of the
// test's own for its upstream servers, joined by the bottle's sidecar.
// Sidecars share one egress network on which no container reaches another,
// so an upstream there would be out of the sidecar's reach; on a network of
// its own the sidecar reaches the upstream and resolves its aliases, and
// the agent, on the internal network only, does not.
package upstreamnet

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// Join makes the bridge network name, carrying labels, and connects to it
// the one container that carries every label of sidecar ("KEY=VALUE"
// each). Both steps accept what an earlier call did, so calling it again is
// a no-op.
func Join(ctx context.Context, cli client.APIClient, name string, labels map[string]string, sidecar ...string) error {
	_, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels})
	if err != nil && !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("creating the upstreams' network %s: %w", name, err)
	}
	args := filters.NewArgs()
	for _, l := range sidecar {
		args.Add("label", l)
	}
	sidecars, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return fmt.Errorf("finding the sidecar: %w", err)
	}
	if len(sidecars) != 1 {
		return fmt.Errorf("finding the sidecar: %d found", len(sidecars))
	}
	err = cli.NetworkConnect(ctx, name, sidecars[0].ID, nil)
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("connecting the sidecar to %s: %w", name, err)
	}
	return nil
}
