package dockerbottle

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// DefaultSubnetPool is carved into /28 networks, one per bottle. Docker's
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

// EgressNetwork is the one egress network every bottle's sidecar joins:
// a bottle makes one network of its own (the internal one) instead of
// two, which is a network create, a removal and the engine's firewall
// work for it fewer per bottle, and what ten starts at once queued on.
// Inter-container traffic is off on its bridge, so a sidecar reaches the
// outside and nothing on the network, other bottles' sidecars included.
// It is a shared resource like the cached images: no bottle's teardown
// removes it, and gc removes it only once no bottle is left.
const EgressNetwork = "bottle-egress"

// LabelShared marks a resource that bottles share rather than own; its
// value says what it is.
const LabelShared = "dev.bottle.shared"

const sharedEgressValue = "egress"

// sharedEgress returns the shared egress network, made when missing. Two
// servers may make it at the same time: the engine's check of the name is
// not atomic, so both may succeed. Every server then takes the network
// with the lowest id, and the one that made another removes it.
//
// A container's start finds its networks by name, and a name that two
// networks carry is an error ("ambiguous"), so this server's own starts
// look for it and make it one at a time (the engine's own check of a
// duplicate name, which the client asks for, is not atomic).
func (e *Engine) sharedEgress(ctx context.Context) (bottleNetwork, error) {
	e.egressMu.Lock()
	defer e.egressMu.Unlock()
	// Servers on this machine (an editor's, the daemon, the tests') take
	// turns through a lock file as well.
	if unlock := machineLock(ctx, "bottle-egress-network"); unlock != nil {
		defer unlock()
	}
	if n, err := e.findSharedEgress(ctx); err != nil || n.ID != "" {
		return n, err
	}
	resp, err := e.cli.NetworkCreate(ctx, EgressNetwork, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{LabelShared: sharedEgressValue},
		// The engine's own address pools give it a subnet: it holds every
		// sidecar, more than a /28 of ours would.
		Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"},
	})
	if err != nil && !cerrdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
		return bottleNetwork{}, fmt.Errorf("creating the shared egress network %s: %w", EgressNetwork, engineErr(err))
	}
	n, ferr := e.findSharedEgress(ctx)
	switch {
	case ferr != nil:
		return bottleNetwork{}, ferr
	case n.ID == "":
		return bottleNetwork{}, fmt.Errorf("creating the shared egress network %s: it is gone right after its creation (is a gc running?)", EgressNetwork)
	}
	if resp.ID != "" && resp.ID != n.ID {
		// Nothing is attached to ours yet; another server's came first.
		if err := e.removeNetwork(ctx, resp.ID, EgressNetwork); err != nil {
			e.log.Warn("removing a second shared egress network", "id", resp.ID, "err", err)
		}
	}
	return n, nil
}

// machineLockWait bounds the wait for a machine lock: past it a start
// goes on without one, as when the lock file cannot be had at all.
const machineLockWait = 10 * time.Second

// machineLock takes an exclusive flock on a lock file of this user's in
// the temporary folder, shared by this user's servers on the machine, and
// returns its release; nil when there is none to be had. The lock only
// narrows a race that the caller survives anyway, so it is never a reason
// to fail or to hang: the file is this user's own and no one else's to
// open (mode 0600, a link or another's file is not used), and the wait
// ends with ctx or after machineLockWait. A blocked flock cannot be
// cancelled, so it polls.
func machineLock(ctx context.Context, name string) func() {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("%s-%d.lock", name, os.Geteuid()))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil
	}
	var st syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &st) != nil || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		f.Close()
		return nil
	}
	deadline := time.NewTimer(machineLockWait)
	defer deadline.Stop()
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil
		case <-deadline.C:
			f.Close()
			return nil
		case <-time.After(wait):
		}
	}
}

// findSharedEgress is the shared egress network with the lowest id; no ID
// when there is none.
func (e *Engine) findSharedEgress(ctx context.Context) (bottleNetwork, error) {
	ns, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: sharedEgressFilter()})
	if err != nil {
		return bottleNetwork{}, fmt.Errorf("looking for the shared egress network: %w", engineErr(err))
	}
	var found bottleNetwork
	for _, n := range ns {
		if n.Name == EgressNetwork && (found.ID == "" || n.ID < found.ID) {
			found = bottleNetwork{ID: n.ID, Name: n.Name}
		}
	}
	return found, nil
}

func sharedEgressFilter() filters.Args {
	return filters.NewArgs(filters.Arg("label", LabelShared+"="+sharedEgressValue))
}

// removeSharedEgress removes the shared egress network once no bottle is
// left, live or starting, of any server. The engine alone refuses only
// while a running container is attached: a sidecar that is only created
// holds no endpoint yet, and its start would fail. So bottles are looked
// for first, right before the removal (gc's own list is older by the
// orphans' removal).
func (e *Engine) removeSharedEgress(ctx context.Context) error {
	cs, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Limit: 1, Filters: filters.NewArgs(filters.Arg("label", LabelSession))})
	if err != nil {
		return fmt.Errorf("looking for bottles before removing the shared egress network: %w", engineErr(err))
	}
	if len(cs) > 0 {
		return nil
	}
	ns, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: sharedEgressFilter()})
	if err != nil {
		return fmt.Errorf("looking for the shared egress network: %w", engineErr(err))
	}
	var errs []error
	for _, n := range ns {
		err := e.cli.NetworkRemove(ctx, n.ID)
		switch {
		case err == nil || cerrdefs.IsNotFound(err):
		case strings.Contains(err.Error(), "active endpoints"):
			e.log.Debug("the shared egress network is in use; kept", "id", n.ID)
		default:
			errs = append(errs, fmt.Errorf("removing the shared egress network: %w", engineErr(err)))
		}
	}
	return errors.Join(errs...)
}
