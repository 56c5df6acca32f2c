package dockerbottle_test

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

// upstreamNetwork is where a test's upstream servers live for the bottle
// whose resources carry label (its session, or its pool id when it came
// from the warm pool): a network of the test's own,
// bottle-LABEL-egress, that the bottle's sidecar joins. Sidecars share one
// egress network on which no container reaches another, so an upstream
// there would be out of the sidecar's reach; on this one the sidecar
// reaches it and resolves its aliases, and the agent, on the internal
// network only, does not. It carries the label, so the bottle's Close
// removes it after its containers. Calling it again is a no-op.
func upstreamNetwork(t testing.TB, label string) string {
	t.Helper()
	label = bottleLabel(label)
	ctx := context.Background()
	cli := engine.Client()
	name := "bottle-" + label + "-egress"
	_, err := cli.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{dockerbottle.LabelSession: label, labelTest: "1"},
	})
	if err != nil && !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("creating the upstreams' network %s: %v", name, err)
	}
	sidecars, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", dockerbottle.LabelSession+"="+label), filters.Arg("label", dockerbottle.LabelRole+"=sidecar"))})
	if err != nil || len(sidecars) != 1 {
		t.Fatalf("finding the sidecar of bottle %s: %d found, %v", label, len(sidecars), err)
	}
	err = cli.NetworkConnect(ctx, name, sidecars[0].ID, nil)
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("connecting the sidecar of bottle %s to %s: %v", label, name, err)
	}
	return name
}
