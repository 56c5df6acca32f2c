package dockerbottle_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
)

func TestGatewayOf(t *testing.T) {
	t.Parallel()
	const id = "0123456789abcdef0123456789abcdef"
	ipnet := func(s string) *net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	defaultBridge := network.Inspect{Name: "bridge", ID: id, Driver: "bridge",
		Options: map[string]string{"com.docker.network.bridge.name": "docker0"},
		IPAM:    network.IPAM{Config: []network.IPAMConfig{{Subnet: "172.17.0.0/16"}}}}
	userBridge := network.Inspect{Name: "mine", ID: id, Driver: "bridge",
		IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.9.0.0/24"}}}}
	for _, tc := range []struct {
		name    string
		n       network.Inspect
		ifaces  map[string][]net.Addr
		want    string
		wantErr string
	}{
		{
			name: "the gateway IPAM names, even where the bridge holds none (inhibit_ipv4)",
			n: network.Inspect{Name: "internal", ID: id, Driver: "bridge",
				IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.9.0.0/24", Gateway: "10.9.0.1"}}}},
			ifaces: map[string][]net.Addr{},
			want:   "10.9.0.1",
		},
		{
			name: "a new engine's default bridge: docker0's address in the subnet",
			n:    defaultBridge,
			ifaces: map[string][]net.Addr{"docker0": {
				ipnet("fe80::1/64"), ipnet("192.168.5.1/24"), ipnet("172.17.0.1/16"),
			}},
			want: "172.17.0.1",
		},
		{
			name:   "a user bridge without a gateway: its br-<id> interface",
			n:      userBridge,
			ifaces: map[string][]net.Addr{"br-0123456789ab": {ipnet("10.9.0.1/24")}},
			want:   "10.9.0.1",
		},
		{
			name:    "a bridge holding no address in its subnet is an error",
			n:       defaultBridge,
			ifaces:  map[string][]net.Addr{"docker0": {ipnet("fe80::1/64")}},
			wantErr: "holds no address in [172.17.0.0/16]",
		},
		{
			name:    "a bridge interface that is not there is an error",
			n:       defaultBridge,
			ifaces:  map[string][]net.Addr{},
			wantErr: "its bridge docker0: no such interface",
		},
		{
			name: "another driver without a gateway is an error",
			n: network.Inspect{Name: "host", ID: id, Driver: "host",
				IPAM: network.IPAM{Config: []network.IPAMConfig{}}},
			ifaces:  map[string][]net.Addr{},
			wantErr: `driver "host"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := gatewayOf(tc.n, func(name string) ([]net.Addr, error) {
				as, ok := tc.ifaces[name]
				if !ok {
					return nil, errors.New("no such interface")
				}
				return as, nil
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("gatewayOf = %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("gatewayOf = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestNetworkGatewayOfTheDefaultBridge asks the engine the escape suite
// runs on: the address found for the default bridge must be one the host
// holds on it, whether or not the engine's IPAM names it yet.
func TestNetworkGatewayOfTheDefaultBridge(t *testing.T) {
	needEngine(t)
	t.Parallel()
	gw := networkGateway(t, "bridge")
	n, err := engine.Client().NetworkInspect(context.Background(), "bridge", network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	as, err := interfaceAddrs(bridgeName(n))
	if err != nil {
		t.Fatalf("the default bridge's interface %s: %v", bridgeName(n), err)
	}
	for _, a := range as {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.String() == gw {
			return
		}
	}
	t.Fatalf("gateway %s of the default bridge is not an address of %s (%v)", gw, bridgeName(n), as)
}
