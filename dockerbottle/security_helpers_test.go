package dockerbottle_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
)

// Helpers of the egress security tests (escape suite, DLP, SSH, benchmarks).

var (
	netprobeOnce  sync.Once
	netprobeImage string
	netprobeBin   string
	probeAgent    string
	netprobeErr   error
)

// testNetprobe builds testdata/netprobe once per run: a static binary
// (copied into agents as the attacker's tool) and a FROM scratch image of
// it (the upstream server), removed at the end of the run.
func testNetprobe(t testing.TB) (image, binary string) {
	t.Helper()
	netprobeOnce.Do(func() {
		netprobeBin = filepath.Join(workDir, "netprobe")
		if netprobeErr = goBuild(netprobeBin, "./testdata/netprobe"); netprobeErr != nil {
			return
		}
		data, err := os.ReadFile(netprobeBin)
		if err != nil {
			netprobeErr = err
			return
		}
		netprobeImage = "bottle-test/netprobe:latest"
		netprobeErr = buildTestImage(netprobeImage, map[string][]byte{
			"Dockerfile": []byte("FROM scratch\nCOPY netprobe /netprobe\nENTRYPOINT [\"/netprobe\"]\nCMD [\"serve\"]\n"),
			"netprobe":   data,
		})
		if netprobeErr != nil {
			return
		}
		// The agent image of these tests: the base image with the probe in
		// it, the same under both runtimes. (Copying it into a started
		// agent's /tmp would not do: gVisor mounts a tmpfs of its own
		// there, which docker cp does not reach.)
		probeAgent = "bottle-test/probe-agent:latest"
		netprobeErr = buildTestImage(probeAgent, map[string][]byte{
			"Dockerfile": []byte("FROM " + baseImage + "\nCOPY netprobe /usr/local/bin/netprobe\n"),
			"netprobe":   data,
		})
	})
	if netprobeErr != nil {
		t.Fatalf("building the netprobe test tool: %v", netprobeErr)
	}
	return netprobeImage, netprobeBin
}

// probeAgentImage is the base image with netprobe in /usr/local/bin.
func probeAgentImage(t testing.TB) string {
	t.Helper()
	testNetprobe(t)
	return probeAgent
}

// egressManifest is one agent "sh" on the base image with the given egress
// section (YAML, indented under egress:) and extra files.
func egressManifest(t testing.TB, runtime, egressYAML string, files map[string]string) *manifest.Manifest {
	t.Helper()
	return imageManifest(t, baseImage, runtime, egressYAML, files)
}

// imageManifest is egressManifest on another image.
func imageManifest(t testing.TB, image, runtime, egressYAML string, files map[string]string) *manifest.Manifest {
	t.Helper()
	y := fmt.Sprintf(`
agents:
  sh: {bottle: plain, command: [bash]}
bottles:
  plain:
    image: %s
    runtime: %s
    limits: {memory: 512m, pids: 256}
    egress:
%s
`, image, runtime, indent(egressYAML, "      "))
	return parseManifest(t, y, files)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// startNetprobe runs the netprobe server on the bottle's upstream network
// (upstreamNetwork) under alias, labelled with the session so that
// teardown removes it.
func startNetprobe(t testing.TB, session, alias string) (ip string) {
	t.Helper()
	img, _ := testNetprobe(t)
	netName := upstreamNetwork(t, session)
	id := createTestContainer(t, session, &container.Config{Image: img}, &container.HostConfig{NetworkMode: container.NetworkMode(netName)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{alias}}}})
	if err := engine.Client().ContainerStart(context.Background(), id, container.StartOptions{}); err != nil {
		t.Fatalf("starting %s: %v", alias, err)
	}
	c, err := engine.Client().ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.NetworkSettings.Networks[netName].IPAddress
}

// createTestContainer creates a container labelled with the session (so
// the bottle's teardown removes it) and as a test resource.
func createTestContainer(t testing.TB, session string, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig) string {
	t.Helper()
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels[dockerbottle.LabelSession] = bottleLabel(session)
	cfg.Labels[labelTest] = "1"
	resp, err := engine.Client().ContainerCreate(context.Background(), cfg, host, net, nil, "")
	if err != nil {
		t.Fatalf("creating a test container: %v", err)
	}
	return resp.ID
}

// runNetprobe runs netprobe with args in a container of its own (runc) on
// the given networks of the session's bottle, waits for it and removes it.
// The tests use it as a control: what a container that is on a network
// gets, the agent must not.
func runNetprobe(t testing.TB, session string, networks []string, args ...string) (string, int) {
	t.Helper()
	ctx := context.Background()
	img, _ := testNetprobe(t)
	id := createTestContainer(t, session, &container.Config{Image: img, Cmd: args},
		&container.HostConfig{NetworkMode: container.NetworkMode(networks[0]), Runtime: dockerbottle.RuntimeRunc}, nil)
	defer engine.Client().ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	for _, n := range networks[1:] {
		if err := engine.Client().NetworkConnect(ctx, n, id, nil); err != nil {
			t.Fatalf("connecting the probe to %s: %v", n, err)
		}
	}
	if err := engine.Client().ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		t.Fatalf("starting the probe: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	waitC, errC := engine.Client().ContainerWait(wctx, id, container.WaitConditionNotRunning)
	var code int
	select {
	case w := <-waitC:
		code = int(w.StatusCode)
	case err := <-errC:
		t.Fatalf("waiting for the probe: %v", err)
	}
	return containerLogs(t, id), code
}

// sidecarInfo is what the tests need of a bottle's sidecar.
type sidecarInfo struct {
	ID, Name, Hostname string
	InternalIP         string
}

func sidecarOf(t testing.TB, session string) sidecarInfo {
	t.Helper()
	session = bottleLabel(session)
	name := "bottle-" + session + "-egress-proxy"
	c, err := engine.Client().ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatalf("inspecting the sidecar: %v", err)
	}
	return sidecarInfo{ID: c.ID, Name: name, Hostname: c.Config.Hostname,
		InternalIP: c.NetworkSettings.Networks["bottle-"+session+"-internal"].IPAddress}
}

// containerLogs is everything a container wrote so far.
func containerLogs(t testing.TB, id string) string {
	t.Helper()
	rc, err := engine.Client().ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("reading logs of %.12s: %v", id, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	stdcopy.StdCopy(&out, &out, rc)
	return out.String()
}

// networkGateway is the host's address on a network, which the escape
// suite must find even on an engine installed a minute ago.
func networkGateway(t testing.TB, name string) string {
	t.Helper()
	n, err := engine.Client().NetworkInspect(context.Background(), name, network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspecting network %s: %v", name, err)
	}
	gw, err := gatewayOf(n, interfaceAddrs)
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// gatewayOf is the gateway IPAM names for a network or, where it names
// none, the address the network's bridge holds on the host inside the
// network's subnet: a new engine's default bridge shows only its subnet
// until a container has been attached to it, while docker0 has had its
// address since the daemon started. No address at all is an error: the
// suite would otherwise pass without having tried that way out.
func gatewayOf(n network.Inspect, addrs func(ifname string) ([]net.Addr, error)) (string, error) {
	var subnets []*net.IPNet
	for _, c := range n.IPAM.Config {
		if c.Gateway != "" {
			return c.Gateway, nil
		}
		if _, sn, err := net.ParseCIDR(c.Subnet); err == nil {
			subnets = append(subnets, sn)
		}
	}
	if n.Driver != "bridge" {
		return "", fmt.Errorf("network %s (driver %q) has no gateway in its IPAM config", n.Name, n.Driver)
	}
	ifname := bridgeName(n)
	as, err := addrs(ifname)
	if err != nil {
		return "", fmt.Errorf("network %s has no gateway in its IPAM config, and its bridge %s: %w", n.Name, ifname, err)
	}
	for _, a := range as {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		for _, sn := range subnets {
			if sn.Contains(ipn.IP) {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", fmt.Errorf("network %s has no gateway in its IPAM config, and its bridge %s holds no address in %v (it holds %v)", n.Name, ifname, subnets, as)
}

// bridgeName is the host interface of a bridge network: docker0 for the
// default one, br-<id> for the others unless the network was created with
// its own name.
func bridgeName(n network.Inspect) string {
	if name := n.Options["com.docker.network.bridge.name"]; name != "" {
		return name
	}
	return "br-" + n.ID[:12]
}

func interfaceAddrs(name string) ([]net.Addr, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	return ifc.Addrs()
}

// bridgeLinkLocal is the IPv6 link-local address of a bottle network's
// bridge on the host, or "" when the host gives it none.
func bridgeLinkLocal(t testing.TB, name string) string {
	t.Helper()
	n, err := engine.Client().NetworkInspect(context.Background(), name, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	as, err := interfaceAddrs(bridgeName(n))
	if err != nil {
		return ""
	}
	for _, a := range as {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsLinkLocalUnicast() && ipn.IP.To4() == nil {
			return ipn.IP.String()
		}
	}
	return ""
}

// hostListener holds a TCP listener on every host address (IPv4 and IPv6)
// and a UDP socket on the same port, and counts what reaches them.
type hostListener struct {
	port     string
	tcp, udp atomic.Int32
}

func listenOnHost(t testing.TB) *hostListener {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostListener{port: port}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.tcp.Add(1)
			io.WriteString(c, "host listener\n")
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			h.udp.Add(1)
			pc.WriteTo(buf[:n], from)
		}
	}()
	return h
}

// refusal waits for the audit's denial of host (and port, unless 0) with
// rule (a prefix match: "dlp:" matches every DLP rule).
func (a *auditLog) refusal(t *testing.T, method, host string, port int, rule string) egress.Record {
	t.Helper()
	return a.waitFor(t, func(r egress.Record) bool {
		return r.Decision == "deny" && r.Method == method && r.Host == host && (port == 0 || r.Port == port) && strings.HasPrefix(r.Rule, rule)
	})
}

// count is the number of records that match.
func (a *auditLog) count(match func(egress.Record) bool) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.recs {
		if match(r) {
			n++
		}
	}
	return n
}

// lines returns the records so far, one a line.
func (a *auditLog) lines() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	for _, r := range a.recs {
		fmt.Fprintf(&b, "%+v\n", r)
	}
	return b.String()
}

// mustFail runs argv in the bottle and wants it to fail by itself: exit
// codes 126 and 127 (not runnable, not found) would make any attempt look
// refused.
func mustFail(t *testing.T, b *dockerbottle.Bottle, argv ...string) string {
	t.Helper()
	out, code := run(t, b, argv...)
	switch code {
	case 0:
		t.Errorf("%q got through: %s", argv, out)
	case 126, 127:
		t.Errorf("%q did not run (exit %d): %s", argv, code, out)
	}
	return out
}
