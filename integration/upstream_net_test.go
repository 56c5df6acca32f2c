package integration

import (
	"context"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/dockerbottle"
)

// upstreamNetwork is where a test's upstream servers live for a session's
// bottle: a network of the test's own, bottle-SESSION-egress, that the
// bottle's sidecar joins. Sidecars share one egress network on which no
// container reaches another, so an upstream there would be out of the
// sidecar's reach; on this one the sidecar reaches it and resolves its
// aliases, and the agent, on the internal network only, does not. It
// carries the session's label, so bottle/close removes it after its
// containers. Calling it again is a no-op.
func upstreamNetwork(t testing.TB, session string) string {
	t.Helper()
	ctx := context.Background()
	cli := dockerClient(t)
	name := "bottle-" + session + "-egress"
	_, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: map[string]string{dockerbottle.LabelSession: session}})
	if err != nil && !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("creating the upstreams' network %s: %v", name, err)
	}
	sidecars, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", dockerbottle.LabelSession+"="+session), filters.Arg("label", dockerbottle.LabelRole+"=sidecar"))})
	if err != nil || len(sidecars) != 1 {
		t.Fatalf("finding the sidecar of bottle %s: %d found, %v", session, len(sidecars), err)
	}
	if err := cli.NetworkConnect(ctx, name, sidecars[0].ID, nil); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("connecting the sidecar of bottle %s to %s: %v", session, name, err)
	}
	return name
}
