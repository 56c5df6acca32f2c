package dockerbottle_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/egress"
)

// TestSharedEgressNetwork checks the egress network that every sidecar
// joins: one bottle's sidecar does not reach another's over it, even when
// the allowlist names that sidecar's address; the agent reaches nothing on
// it, nor the host through its gateway; and no bottle's teardown removes
// it. Under runc and runsc (the agent's runtime; sidecars run runc).
func TestSharedEgressNetwork(t *testing.T) {
	needEngine(t)
	t.Parallel()
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			other := startBottle(t, backend.StartSpec{Manifest: simpleManifest(t, rt), Agent: "sh"})
			otherSidecar := egressAddr(t, other)
			// Control: the other sidecar listens there; the host reaches it.
			target := net.JoinHostPort(otherSidecar, "3128")
			if c, err := net.DialTimeout("tcp", target, 5*time.Second); err != nil {
				t.Fatalf("control: the other sidecar does not answer on %s from the host: %v", target, err)
			} else {
				c.Close()
			}

			audit := &auditLog{}
			// An IP literal on the allowlist needs no trust: the proxy lets
			// the request through, and only the network can stop it.
			m := imageManifest(t, probeAgentImage(t), rt, fmt.Sprintf("allow: [%q]", target), nil)
			bt := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh", OnEgress: audit.add})
			own := egressAddr(t, bt)
			checkSharedEgressNetwork(t)

			t.Run("a sidecar does not reach another over the shared network", func(t *testing.T) {
				out := mustRun(t, bt, "curl", "-sS", "--max-time", "40", "-w", "\n%{http_code}", "http://"+target+"/")
				if !strings.HasSuffix(out, "\n502") || !strings.Contains(out, "failed") {
					t.Errorf("the proxy's request to the other sidecar: %q, want its 502 (a reached sidecar answers 400)", out)
				}
				audit.waitFor(t, func(r egress.Record) bool {
					return r.Event == egress.EventClose && r.Host == otherSidecar && r.Port == 3128 && r.Decision == egress.DecisionAllow && r.Reason != ""
				})
				if out := mustFail(t, bt, "curl", "-sS", "--max-time", "40", "-o", "/dev/null", "-p", "https://"+target+"/"); !strings.Contains(out, "502") {
					t.Errorf("a tunnel to the other sidecar: %q, want the proxy's 502", out)
				}
			})

			t.Run("the agent reaches nothing on the shared network", func(t *testing.T) {
				host := listenOnHost(t)
				gw := networkGateway(t, dockerbottle.EgressNetwork)
				for _, addr := range []string{target, net.JoinHostPort(own, "3128"), net.JoinHostPort(gw, host.port)} {
					mustFail(t, bt, "netprobe", "tcp", addr)
				}
				mustFail(t, bt, "netprobe", "udp", net.JoinHostPort(gw, host.port))
				if n, u := host.tcp.Load(), host.udp.Load(); n != 0 || u != 0 {
					t.Errorf("the host listener was reached: %d TCP connections, %d UDP datagrams", n, u)
				}
			})

			t.Run("a teardown leaves it", func(t *testing.T) {
				if err := other.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				checkSharedEgressNetwork(t)
			})
		})
	}
}

// egressAddr is the address of a bottle's sidecar on the shared egress
// network, found through the agent container's label.
func egressAddr(t *testing.T, bt *dockerbottle.Bottle) string {
	t.Helper()
	label := inspect(t, bt.Info().ContainerID).Config.Labels[dockerbottle.LabelSession]
	c, err := engine.Client().ContainerInspect(context.Background(), "bottle-"+label+"-egress-proxy")
	if err != nil {
		t.Fatalf("inspecting the sidecar of %s: %v", bt.Info().Session, err)
	}
	ep := c.NetworkSettings.Networks[dockerbottle.EgressNetwork]
	if ep == nil || ep.IPAddress == "" {
		t.Fatalf("the sidecar of %s is not on %s: %v", bt.Info().Session, dockerbottle.EgressNetwork, c.NetworkSettings.Networks)
	}
	return ep.IPAddress
}

// checkSharedEgressNetwork wants one shared egress network, with traffic
// between its containers off, a route out, and no session or owner.
func checkSharedEgressNetwork(t *testing.T) {
	t.Helper()
	n, err := engine.Client().NetworkInspect(context.Background(), dockerbottle.EgressNetwork, network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspecting the shared egress network: %v", err)
	}
	if n.Options["com.docker.network.bridge.enable_icc"] != "false" || n.Internal {
		t.Errorf("the shared egress network: internal %v, options %v; want a route out and enable_icc false", n.Internal, n.Options)
	}
	if n.Labels[dockerbottle.LabelShared] != "egress" || n.Labels[dockerbottle.LabelSession] != "" || n.Labels[dockerbottle.LabelOwner] != "" {
		t.Errorf("the shared egress network's labels: %v", n.Labels)
	}
}
