package dockerbottle

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
)

// Two bottles share one egress network: the first start makes it, the
// second finds it, and neither's teardown removes it.
func TestUnitSidecarsShareOneEgressNetwork(t *testing.T) {
	m := newMemEngine()
	t.Cleanup(m.close)
	e := fakeEngine(t, m.api)
	ctx := context.Background()
	var bottles []backend.Bottle
	for _, session := range []string{"s1", "s2"} {
		bt, err := e.Start(ctx, backend.StartSpec{Manifest: fakeManifest(t, RuntimeRunsc), Agent: "sh", Session: session}, nil)
		if err != nil {
			t.Fatal(err)
		}
		bottles = append(bottles, bt)
	}
	log := m.calls()
	var creates []string
	for _, c := range log {
		if strings.HasPrefix(c, "NetworkCreate ") {
			creates = append(creates, c)
		}
	}
	want := []string{"NetworkCreate " + EgressNetwork, "NetworkCreate bottle-s1-internal", "NetworkCreate bottle-s2-internal"}
	slices.Sort(creates)
	if !slices.Equal(creates, want) {
		t.Errorf("networks made %q, want %q", creates, want)
	}
	if n := slices.Index(log, "NetworkConnect bottle-s2-egress-proxy"); n < 0 {
		t.Errorf("the second sidecar was not connected to the egress network: %q", log)
	}
	for _, bt := range bottles {
		if err := bt.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := m.networks[EgressNetwork]; !ok || slices.Contains(m.calls(), "NetworkRemove "+EgressNetwork) {
		t.Errorf("a teardown removed the shared egress network: %q", m.calls())
	}
	labels := m.networks[EgressNetwork]
	if labels[LabelShared] != "egress" || labels[LabelSession] != "" || labels[LabelOwner] != "" {
		t.Errorf("the shared egress network's labels: %v, want %s=egress and no session or owner", labels, LabelShared)
	}
}

// GC removes the shared egress network only once no bottle is left, and
// never lists it among the orphans.
func TestUnitGCRemovesTheSharedEgressNetworkOnlyWhenNoBottleIsLeft(t *testing.T) {
	m := newMemEngine()
	t.Cleanup(m.close)
	e := fakeEngine(t, m.api)
	ctx := context.Background()
	bt, err := e.Start(ctx, backend.StartSpec{Manifest: fakeManifest(t, RuntimeRunsc), Agent: "sh", Session: "s1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		reaped, err := e.GC(ctx, dry)
		if err != nil {
			t.Fatal(err)
		}
		if len(reaped) != 0 {
			t.Errorf("gc (dry run %v) with a live bottle reaped %v", dry, reaped)
		}
	}
	if _, ok := m.networks[EgressNetwork]; !ok {
		t.Fatal("gc removed the shared egress network under a live bottle")
	}
	if err := bt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if reaped, err := e.GC(ctx, true); err != nil || len(reaped) != 0 {
		t.Fatalf("dry run: %v, %v", reaped, err)
	}
	if _, ok := m.networks[EgressNetwork]; !ok {
		t.Fatal("a dry run removed the shared egress network")
	}
	if reaped, err := e.GC(ctx, false); err != nil || len(reaped) != 0 {
		t.Fatalf("gc: %v, %v", reaped, err)
	}
	if _, ok := m.networks[EgressNetwork]; ok {
		t.Error("gc with no bottle left kept the shared egress network")
	}
}

// When another server made the shared network at the same moment, both
// end up on the one with the lowest id, and the other is removed by the
// server that made it.
func TestUnitTwoServersMakingTheEgressNetworkAtOnceKeepOne(t *testing.T) {
	m := newMemEngine()
	t.Cleanup(m.close)
	e := fakeEngine(t, m.api)
	create := m.api.networkCreateFunc
	list := m.api.networkListFunc
	m.api.networkCreateFunc = func(ctx context.Context, name string, opts network.CreateOptions) (network.CreateResponse, error) {
		if name == EgressNetwork {
			// The other server's network is made between our look and our
			// create, and the engine's name check misses it.
			m.mu.Lock()
			m.networks["0-theirs"] = opts.Labels
			m.mu.Unlock()
		}
		return create(ctx, name, opts)
	}
	m.api.networkListFunc = func(ctx context.Context, opts network.ListOptions) ([]network.Summary, error) {
		ns, err := list(ctx, opts)
		for i := range ns {
			if ns[i].Name == "0-theirs" {
				ns[i].Name = EgressNetwork
			}
		}
		return ns, err
	}
	n, err := e.sharedEgress(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != "id-0-theirs" {
		t.Errorf("took %s, want the other server's network (the lowest id)", n.ID)
	}
	if _, ok := m.networks[EgressNetwork]; ok {
		t.Errorf("our second egress network is still there: %q", m.calls())
	}
}

// A start whose shared network a gc removed after prepare found it makes
// the network again and connects its sidecar to that one.
func TestUnitSidecarConnectsToTheEgressNetworkMadeAgainAfterAGC(t *testing.T) {
	m := newMemEngine()
	t.Cleanup(m.close)
	connect := m.api.networkConnectFunc
	first := true
	m.api.networkConnectFunc = func(ctx context.Context, networkID, containerID string, cfg *network.EndpointSettings) error {
		if first {
			first = false
			m.mu.Lock()
			delete(m.networks, EgressNetwork)
			m.mu.Unlock()
			return fmt.Errorf("network %s not found: %w", networkID, cerrdefs.ErrNotFound)
		}
		return connect(ctx, networkID, containerID, cfg)
	}
	_, bt, err := startOnFake(t, m, RuntimeRunsc, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	n := 0
	for _, c := range m.calls() {
		if c == "NetworkCreate "+EgressNetwork {
			n++
		}
	}
	if n != 2 {
		t.Errorf("made the egress network %d times, want 2: %q", n, m.calls())
	}
}

// A sidecar image pruned between prepare and the creates (a server of
// another bottle-rpc build made its own) is made again, and the sidecar and
// the DNS guard are created from it.
func TestUnitASidecarImagePrunedUnderAStartIsMadeAgain(t *testing.T) {
	m := newMemEngine()
	t.Cleanup(m.close)
	create := m.api.containerCreateFunc
	pruned := map[string]bool{}
	m.api.containerCreateFunc = func(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, name string) (container.CreateResponse, error) {
		role := cfg.Labels[LabelRole]
		m.mu.Lock()
		first := (role == "sidecar" || role == "dns-guard") && !pruned[role]
		pruned[role] = true
		m.mu.Unlock()
		if first {
			return container.CreateResponse{}, fmt.Errorf("No such image: %s: %w", cfg.Image, cerrdefs.ErrNotFound)
		}
		return create(ctx, cfg, host, net, name)
	}
	_, bt, err := startOnFake(t, m, RuntimeRunc, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	if !pruned["sidecar"] || !pruned["dns-guard"] {
		t.Errorf("the creates were not refused first: %v", pruned)
	}
}
