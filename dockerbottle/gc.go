package dockerbottle

import (
	"context"
	"errors"
	"fmt"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
)

// Resource is a labelled container, network or image on the engine.
type Resource struct {
	Kind    string `json:"kind"` // container, network, image
	ID      string `json:"id"`
	Name    string `json:"name"`
	Session string `json:"session"`
	Owner   string `json:"owner"`
	// OwnerPID is the pid of the server that made it.
	OwnerPID string `json:"ownerPid"`

	labels map[string]string
}

// Resources lists every container, network and image a bottle made, by
// any server.
func (e *Engine) Resources(ctx context.Context) ([]Resource, error) {
	f := filters.NewArgs(filters.Arg("label", LabelSession))
	var out []Resource
	cs, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing bottle containers: %w", engineErr(err))
	}
	for _, c := range cs {
		name := c.ID[:12]
		if len(c.Names) > 0 {
			name = c.Names[0][1:]
		}
		out = append(out, resource("container", c.ID, name, c.Labels))
	}
	ns, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing bottle networks: %w", engineErr(err))
	}
	for _, n := range ns {
		out = append(out, resource("network", n.ID, n.Name, n.Labels))
	}
	is, err := e.cli.ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing bottle images: %w", engineErr(err))
	}
	for _, i := range is {
		name := i.ID
		if len(i.RepoTags) > 0 {
			name = i.RepoTags[0]
		}
		out = append(out, resource("image", i.ID, name, i.Labels))
	}
	return out, nil
}

func resource(kind, id, name string, labels map[string]string) Resource {
	return Resource{Kind: kind, ID: id, Name: name, Session: labels[LabelSession], Owner: labels[LabelOwner], OwnerPID: labels[LabelOwnerPID], labels: labels}
}

// GC removes the resources of bottles whose server is gone (or that carry
// no owner labels) and returns them; with dryRun it only lists them. A
// live server's bottles, this one's included, are never touched. When no
// bottle is left it also removes the shared egress network, which is no
// bottle's and so not in the list, as the cached images are not.
func (e *Engine) GC(ctx context.Context, dryRun bool) ([]Resource, error) {
	all, err := e.Resources(ctx)
	if err != nil {
		return nil, err
	}
	// A bottle is an orphan only when none of its resources has a live
	// owner: one unlabelled straggler must not doom a live bottle.
	orphaned := map[string]bool{}
	var sessions []string
	for _, r := range all {
		dead := r.Owner != e.owner.ID && !e.owner.ownerAlive(r.labels)
		was, seen := orphaned[r.Session]
		if !seen {
			sessions = append(sessions, r.Session)
			was = true
		}
		orphaned[r.Session] = was && dead
	}
	var reaped []Resource
	for _, r := range all {
		if orphaned[r.Session] {
			reaped = append(reaped, r)
		}
	}
	if dryRun {
		return reaped, nil
	}
	var errs []error
	for _, s := range sessions {
		if orphaned[s] {
			errs = append(errs, e.removeSession(ctx, s))
		}
	}
	errs = append(errs, e.removeSharedEgress(ctx))
	return reaped, errors.Join(errs...)
}
