package dockerbottle

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
)

// TestUnitNoContainerMountsAHostPath: every container a bottle makes (the
// agent, the sidecar, and the DNS guard under runc) is created without a
// bind mount, so nothing assumes the engine sees this machine's files: a
// remote engine's host has other ones. Images and copies go through the
// API.
func TestUnitNoContainerMountsAHostPath(t *testing.T) {
	for _, tt := range []struct {
		runtime string
		roles   []string
	}{
		{RuntimeRunc, []string{"agent", "dns-guard", "sidecar"}},
		{RuntimeRunsc, []string{"agent", "sidecar"}},
	} {
		t.Run(tt.runtime, func(t *testing.T) {
			m := newMemEngine()
			create := m.api.containerCreateFunc
			var mu sync.Mutex
			hosts := map[string]*container.HostConfig{}
			m.api.containerCreateFunc = func(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, name string) (container.CreateResponse, error) {
				mu.Lock()
				hosts[cfg.Labels[LabelRole]] = host
				mu.Unlock()
				return create(ctx, cfg, host, net, name)
			}
			_, bt, err := startOnFake(t, m, tt.runtime, context.Background(), nil)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			defer bt.Close(context.Background())
			mu.Lock()
			defer mu.Unlock()
			var roles []string
			for role, host := range hosts {
				roles = append(roles, role)
				if host == nil {
					continue
				}
				if len(host.Binds) > 0 {
					t.Errorf("the %s container binds host paths: %v", role, host.Binds)
				}
				for _, mt := range host.Mounts {
					if mt.Type == mount.TypeBind {
						t.Errorf("the %s container mounts host path %s", role, mt.Source)
					}
				}
			}
			if slices.Sort(roles); !slices.Equal(roles, tt.roles) {
				t.Errorf("containers made: %v, want %v", roles, tt.roles)
			}
		})
	}
}
