package dockerbottle

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/network"
)

// DefaultSubnetPool is carved into /28 networks, one pair per bottle. Docker's
// default pools hold about 30 bridge networks; a pool of our own leaves them
// alone and lets us give the sidecar a fixed address, so the agent container
// can be created before the sidecar runs.
const DefaultSubnetPool = "10.213.0.0/16"

const subnetBits = 28

// subnetPool hands out subnets. Several servers share one engine, so a
// subnet taken by another is not known here: the engine refuses the
// overlapping network and we move on to the next one.
type subnetPool struct {
	base netip.Prefix
	size int

	mu   sync.Mutex
	next int
}

func newSubnetPool(cidr string) (*subnetPool, error) {
	if cidr == "" {
		cidr = DefaultSubnetPool
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > subnetBits {
		return nil, fmt.Errorf("subnet pool %q: want an IPv4 prefix of /%d or wider, like %s", cidr, subnetBits, DefaultSubnetPool)
	}
	size := 1 << (subnetBits - p.Bits())
	return &subnetPool{base: p.Masked(), size: size, next: rand.IntN(size)}, nil
}

func (p *subnetPool) take() netip.Prefix {
	p.mu.Lock()
	i := p.next
	p.next = (p.next + 1) % p.size
	p.mu.Unlock()
	b := p.base.Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(i)<<(32-subnetBits)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(b), subnetBits)
}

// hostAddr is the n-th address of a subnet (1 is the gateway IPAM reserves).
func hostAddr(p netip.Prefix, n int) netip.Addr {
	b := p.Addr().As4()
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])+uint32(n))
	return netip.AddrFrom4(b)
}

type bottleNetwork struct {
	ID     string
	Name   string
	Subnet netip.Prefix
}

// createNetwork makes a labelled bridge network on a free subnet of the pool.
// The internal one is created with inhibit_ipv4: without it the bridge holds
// the gateway address on the host, and the agent could reach any host
// service listening on all addresses through it.
func (e *Engine) createNetwork(ctx context.Context, name string, internal bool, labels map[string]string) (bottleNetwork, error) {
	opts := map[string]string{}
	if internal {
		opts["com.docker.network.bridge.inhibit_ipv4"] = "true"
	}
	const attempts = 64
	var lastErr error
	for range attempts {
		subnet := e.pool.take()
		resp, err := e.cli.NetworkCreate(ctx, name, network.CreateOptions{
			Driver:   "bridge",
			Internal: internal,
			Labels:   labels,
			Options:  opts,
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{
				Subnet:  subnet.String(),
				Gateway: hostAddr(subnet, 1).String(),
			}}},
		})
		if err == nil {
			return bottleNetwork{ID: resp.ID, Name: name, Subnet: subnet}, nil
		}
		if !isSubnetTaken(err) {
			return bottleNetwork{}, fmt.Errorf("creating network %s: %w", name, engineErr(err))
		}
		lastErr = err
	}
	return bottleNetwork{}, fmt.Errorf("creating network %s: no free subnet after %d tries in the pool (set BOTTLE_SUBNET_POOL to a larger range): %w", name, attempts, lastErr)
}

func isSubnetTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "overlaps")
}
