package dockerbottle

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bottle-dev/bottle/dnsguard"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
)

// fakeAPI is engineAPI with a function field per method, as docker/cli's
// fakeClient: a test sets what its code path calls. A call whose field is
// nil fails with errUnexpected.
type fakeAPI struct {
	infoFunc                 func(ctx context.Context) (system.Info, error)
	imageInspectFunc         func(ctx context.Context, ref string) (image.InspectResponse, error)
	imageBuildFunc           func(ctx context.Context, r io.Reader, opts build.ImageBuildOptions) (build.ImageBuildResponse, error)
	imageListFunc            func(ctx context.Context, opts image.ListOptions) ([]image.Summary, error)
	imageRemoveFunc          func(ctx context.Context, ref string, opts image.RemoveOptions) ([]image.DeleteResponse, error)
	networkCreateFunc        func(ctx context.Context, name string, opts network.CreateOptions) (network.CreateResponse, error)
	networkConnectFunc       func(ctx context.Context, networkID, containerID string, cfg *network.EndpointSettings) error
	networkListFunc          func(ctx context.Context, opts network.ListOptions) ([]network.Summary, error)
	networkRemoveFunc        func(ctx context.Context, networkID string) error
	containerCreateFunc      func(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, name string) (container.CreateResponse, error)
	containerAttachFunc      func(ctx context.Context, id string, opts container.AttachOptions) (types.HijackedResponse, error)
	containerStartFunc       func(ctx context.Context, id string, opts container.StartOptions) error
	containerInspectFunc     func(ctx context.Context, id string) (container.InspectResponse, error)
	containerListFunc        func(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	containerRemoveFunc      func(ctx context.Context, id string, opts container.RemoveOptions) error
	containerRenameFunc      func(ctx context.Context, id, newName string) error
	copyToContainerFunc      func(ctx context.Context, id, dir string, content io.Reader, opts container.CopyToContainerOptions) error
	copyFromContainerFunc    func(ctx context.Context, id, srcPath string) (io.ReadCloser, container.PathStat, error)
	containerExecCreateFunc  func(ctx context.Context, id string, opts container.ExecOptions) (container.ExecCreateResponse, error)
	containerExecAttachFunc  func(ctx context.Context, execID string, opts container.ExecAttachOptions) (types.HijackedResponse, error)
	containerExecStartFunc   func(ctx context.Context, execID string, opts container.ExecStartOptions) error
	containerExecResizeFunc  func(ctx context.Context, execID string, opts container.ResizeOptions) error
	containerExecInspectFunc func(ctx context.Context, execID string) (container.ExecInspect, error)
}

var _ engineAPI = (*fakeAPI)(nil)

func errUnexpected(method string) error { return fmt.Errorf("fake engine: unexpected call %s", method) }

func (f *fakeAPI) Info(ctx context.Context) (system.Info, error) {
	if f.infoFunc == nil {
		return system.Info{}, errUnexpected("Info")
	}
	return f.infoFunc(ctx)
}

func (f *fakeAPI) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	if f.imageInspectFunc == nil {
		return image.InspectResponse{}, errUnexpected("ImageInspect")
	}
	return f.imageInspectFunc(ctx, ref)
}

func (f *fakeAPI) ImageBuild(ctx context.Context, r io.Reader, opts build.ImageBuildOptions) (build.ImageBuildResponse, error) {
	if f.imageBuildFunc == nil {
		return build.ImageBuildResponse{}, errUnexpected("ImageBuild")
	}
	return f.imageBuildFunc(ctx, r, opts)
}

func (f *fakeAPI) ImageList(ctx context.Context, opts image.ListOptions) ([]image.Summary, error) {
	if f.imageListFunc == nil {
		return nil, errUnexpected("ImageList")
	}
	return f.imageListFunc(ctx, opts)
}

func (f *fakeAPI) ImageRemove(ctx context.Context, ref string, opts image.RemoveOptions) ([]image.DeleteResponse, error) {
	if f.imageRemoveFunc == nil {
		return nil, errUnexpected("ImageRemove")
	}
	return f.imageRemoveFunc(ctx, ref, opts)
}

func (f *fakeAPI) NetworkCreate(ctx context.Context, name string, opts network.CreateOptions) (network.CreateResponse, error) {
	if f.networkCreateFunc == nil {
		return network.CreateResponse{}, errUnexpected("NetworkCreate")
	}
	return f.networkCreateFunc(ctx, name, opts)
}

func (f *fakeAPI) NetworkConnect(ctx context.Context, networkID, containerID string, cfg *network.EndpointSettings) error {
	if f.networkConnectFunc == nil {
		return errUnexpected("NetworkConnect")
	}
	return f.networkConnectFunc(ctx, networkID, containerID, cfg)
}

func (f *fakeAPI) NetworkList(ctx context.Context, opts network.ListOptions) ([]network.Summary, error) {
	if f.networkListFunc == nil {
		return nil, errUnexpected("NetworkList")
	}
	return f.networkListFunc(ctx, opts)
}

func (f *fakeAPI) NetworkRemove(ctx context.Context, networkID string) error {
	if f.networkRemoveFunc == nil {
		return errUnexpected("NetworkRemove")
	}
	return f.networkRemoveFunc(ctx, networkID)
}

func (f *fakeAPI) ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	if f.containerCreateFunc == nil {
		return container.CreateResponse{}, errUnexpected("ContainerCreate")
	}
	return f.containerCreateFunc(ctx, cfg, host, net, name)
}

func (f *fakeAPI) ContainerAttach(ctx context.Context, id string, opts container.AttachOptions) (types.HijackedResponse, error) {
	if f.containerAttachFunc == nil {
		return types.HijackedResponse{}, errUnexpected("ContainerAttach")
	}
	return f.containerAttachFunc(ctx, id, opts)
}

func (f *fakeAPI) ContainerStart(ctx context.Context, id string, opts container.StartOptions) error {
	if f.containerStartFunc == nil {
		return errUnexpected("ContainerStart")
	}
	return f.containerStartFunc(ctx, id, opts)
}

func (f *fakeAPI) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	if f.containerInspectFunc == nil {
		return container.InspectResponse{}, errUnexpected("ContainerInspect")
	}
	return f.containerInspectFunc(ctx, id)
}

func (f *fakeAPI) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	if f.containerListFunc == nil {
		return nil, errUnexpected("ContainerList")
	}
	return f.containerListFunc(ctx, opts)
}

func (f *fakeAPI) ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error {
	if f.containerRemoveFunc == nil {
		return errUnexpected("ContainerRemove")
	}
	return f.containerRemoveFunc(ctx, id, opts)
}

func (f *fakeAPI) ContainerRename(ctx context.Context, id, newName string) error {
	if f.containerRenameFunc == nil {
		return errUnexpected("ContainerRename")
	}
	return f.containerRenameFunc(ctx, id, newName)
}

func (f *fakeAPI) CopyFromContainer(ctx context.Context, id, srcPath string) (io.ReadCloser, container.PathStat, error) {
	if f.copyFromContainerFunc == nil {
		return nil, container.PathStat{}, errUnexpected("CopyFromContainer")
	}
	return f.copyFromContainerFunc(ctx, id, srcPath)
}

func (f *fakeAPI) CopyToContainer(ctx context.Context, id, dir string, content io.Reader, opts container.CopyToContainerOptions) error {
	if f.copyToContainerFunc == nil {
		return errUnexpected("CopyToContainer")
	}
	return f.copyToContainerFunc(ctx, id, dir, content, opts)
}

func (f *fakeAPI) ContainerExecCreate(ctx context.Context, id string, opts container.ExecOptions) (container.ExecCreateResponse, error) {
	if f.containerExecCreateFunc == nil {
		return container.ExecCreateResponse{}, errUnexpected("ContainerExecCreate")
	}
	return f.containerExecCreateFunc(ctx, id, opts)
}

func (f *fakeAPI) ContainerExecAttach(ctx context.Context, execID string, opts container.ExecAttachOptions) (types.HijackedResponse, error) {
	if f.containerExecAttachFunc == nil {
		return types.HijackedResponse{}, errUnexpected("ContainerExecAttach")
	}
	return f.containerExecAttachFunc(ctx, execID, opts)
}

func (f *fakeAPI) ContainerExecStart(ctx context.Context, execID string, opts container.ExecStartOptions) error {
	if f.containerExecStartFunc == nil {
		return errUnexpected("ContainerExecStart")
	}
	return f.containerExecStartFunc(ctx, execID, opts)
}

func (f *fakeAPI) ContainerExecResize(ctx context.Context, execID string, opts container.ResizeOptions) error {
	if f.containerExecResizeFunc == nil {
		return errUnexpected("ContainerExecResize")
	}
	return f.containerExecResizeFunc(ctx, execID, opts)
}

func (f *fakeAPI) ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error) {
	if f.containerExecInspectFunc == nil {
		return container.ExecInspect{}, errUnexpected("ContainerExecInspect")
	}
	return f.containerExecInspectFunc(ctx, execID)
}

func (f *fakeAPI) Close() error { return nil }

// fakeEngine is an Engine on a fake API, with a subnet pool and an owner
// of its own; the sidecar's image is taken as built.
func fakeEngine(t *testing.T, api *fakeAPI) *Engine {
	t.Helper()
	e, err := newEngine(api, Options{ProxyBinary: "/nonexistent/bottle-rpc", Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	e.proxyImage = "bottle/egress-proxy:fake"
	return e
}

// memEngine fills a fakeAPI with an engine in memory: enough of images,
// networks and containers for a start, its failure and its teardown. It
// logs every call that makes, starts or removes something, and fails the
// call named in failAt.
type memEngine struct {
	api *fakeAPI

	mu         sync.Mutex
	log        []string                     // "Method name" of each call, in order
	containers map[string]*container.Config // by name
	networks   map[string]map[string]string // labels by name
	peers      []net.Conn
	records    []egress.Record // what the fake sidecar writes once it listens
	sidecarCfg egress.Config   // what the fake sidecar read as its config
	control    []string        // the lines the fake sidecar read after its config; "EOF" when its stdin closed
	failAt     string
	failErr    error
}

func newMemEngine() *memEngine {
	m := &memEngine{containers: map[string]*container.Config{}, networks: map[string]map[string]string{}}
	m.api = &fakeAPI{
		infoFunc: func(context.Context) (system.Info, error) {
			return system.Info{Runtimes: map[string]system.RuntimeWithStatus{RuntimeRunc: {}, RuntimeRunsc: {}}}, m.call("Info", "")
		},
		imageInspectFunc: func(_ context.Context, ref string) (image.InspectResponse, error) {
			return image.InspectResponse{ID: ref}, m.call("ImageInspect", ref)
		},
		networkCreateFunc: func(_ context.Context, name string, opts network.CreateOptions) (network.CreateResponse, error) {
			if err := m.call("NetworkCreate", name); err != nil {
				return network.CreateResponse{}, err
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			m.networks[name] = opts.Labels
			return network.CreateResponse{ID: "id-" + name}, nil
		},
		networkConnectFunc: func(_ context.Context, networkID, containerID string, _ *network.EndpointSettings) error {
			return m.call("NetworkConnect", strings.TrimPrefix(containerID, "id-"))
		},
		containerCreateFunc: func(_ context.Context, cfg *container.Config, _ *container.HostConfig, _ *network.NetworkingConfig, name string) (container.CreateResponse, error) {
			if name == "" {
				name = cfg.Labels[LabelRole]
			}
			if err := m.call("ContainerCreate", name); err != nil {
				return container.CreateResponse{}, err
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if _, taken := m.containers[name]; taken {
				return container.CreateResponse{}, fmt.Errorf("name %s in use: %w", name, cerrdefs.ErrConflict)
			}
			m.containers[name] = cfg
			return container.CreateResponse{ID: "id-" + name}, nil
		},
		containerAttachFunc: func(_ context.Context, id string, _ container.AttachOptions) (types.HijackedResponse, error) {
			name := strings.TrimPrefix(id, "id-")
			if err := m.call("ContainerAttach", name); err != nil {
				return types.HijackedResponse{}, err
			}
			ours, theirs := net.Pipe()
			m.mu.Lock()
			role := m.containers[name].Labels[LabelRole]
			m.peers = append(m.peers, theirs)
			recs := m.records
			m.mu.Unlock()
			go m.serve(role, theirs, recs)
			return types.HijackedResponse{Conn: ours, Reader: bufio.NewReader(ours)}, nil
		},
		containerStartFunc: func(_ context.Context, id string, _ container.StartOptions) error {
			return m.call("ContainerStart", strings.TrimPrefix(id, "id-"))
		},
		copyToContainerFunc: func(_ context.Context, id, _ string, content io.Reader, _ container.CopyToContainerOptions) error {
			io.Copy(io.Discard, content)
			return m.call("CopyToContainer", strings.TrimPrefix(id, "id-"))
		},
		containerListFunc: func(_ context.Context, opts container.ListOptions) ([]container.Summary, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			var out []container.Summary
			for name, cfg := range m.containers {
				if matches(opts.Filters, cfg.Labels) {
					out = append(out, container.Summary{ID: "id-" + name, Names: []string{"/" + name}, Labels: cfg.Labels})
				}
			}
			return out, nil
		},
		containerRemoveFunc: func(_ context.Context, id string, _ container.RemoveOptions) error {
			name := strings.TrimPrefix(id, "id-")
			m.mu.Lock()
			defer m.mu.Unlock()
			if _, ok := m.containers[name]; !ok {
				return fmt.Errorf("no such container %s: %w", name, cerrdefs.ErrNotFound)
			}
			m.log = append(m.log, "ContainerRemove "+name)
			delete(m.containers, name)
			return nil
		},
		networkListFunc: func(_ context.Context, opts network.ListOptions) ([]network.Summary, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			var out []network.Summary
			for name, labels := range m.networks {
				if matches(opts.Filters, labels) {
					out = append(out, network.Summary{ID: "id-" + name, Name: name, Labels: labels})
				}
			}
			return out, nil
		},
		networkRemoveFunc: func(_ context.Context, id string) error {
			name := strings.TrimPrefix(id, "id-")
			m.mu.Lock()
			defer m.mu.Unlock()
			if _, ok := m.networks[name]; !ok {
				return fmt.Errorf("no such network %s: %w", name, cerrdefs.ErrNotFound)
			}
			m.log = append(m.log, "NetworkRemove "+name)
			delete(m.networks, name)
			return nil
		},
		imageListFunc: func(context.Context, image.ListOptions) ([]image.Summary, error) { return nil, nil },
	}
	return m
}

// call logs a call and fails it when it is the one named in failAt.
func (m *memEngine) call(method, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := strings.TrimSpace(method + " " + name)
	m.log = append(m.log, c)
	if c == m.failAt {
		return m.failErr
	}
	return nil
}

// note adds an event of the test's own (a progress step) to the log.
func (m *memEngine) note(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, s)
}

func (m *memEngine) controlLines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.control)
}

func (m *memEngine) calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.log)
}

// left is what the engine still holds.
func (m *memEngine) left() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name := range m.containers {
		out = append(out, "container "+name)
	}
	for name, labels := range m.networks {
		if labels[LabelShared] == "" { // shared by bottles, no start's to remove
			out = append(out, "network "+name)
		}
	}
	return out
}

func (m *memEngine) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.peers {
		c.Close()
	}
}

// serve plays the attached end of a container: the built-in proxy reads
// its config, says it listens and writes its records; the DNS guard says
// the route is in place.
func (m *memEngine) serve(role string, c net.Conn, recs []egress.Record) {
	stdout, stderr := stdcopy.NewStdWriter(c, stdcopy.Stdout), stdcopy.NewStdWriter(c, stdcopy.Stderr)
	switch role {
	case "sidecar":
		// The config is one line; control lines follow until stdin closes.
		in := bufio.NewReader(c)
		line, err := in.ReadBytes('\n')
		var cfg egress.Config
		if err != nil || json.Unmarshal(line, &cfg) != nil {
			return
		}
		m.mu.Lock()
		m.sidecarCfg = cfg
		m.mu.Unlock()
		fmt.Fprintf(stderr, "%s :3128\n", egress.ListeningLine)
		for _, r := range recs {
			json.NewEncoder(stdout).Encode(r)
		}
		for {
			line, err := in.ReadString('\n')
			m.mu.Lock()
			if err != nil {
				m.control = append(m.control, "EOF")
				m.mu.Unlock()
				return
			}
			m.control = append(m.control, strings.TrimSuffix(line, "\n"))
			m.mu.Unlock()
		}
	case "dns-guard":
		fmt.Fprintln(stdout, dnsguard.BlockedLine)
		c.Close()
	}
}

func matches(f filters.Args, labels map[string]string) bool {
	for _, want := range f.Get("label") {
		k, v, withValue := strings.Cut(want, "=")
		if got, ok := labels[k]; !ok || withValue && got != v {
			return false
		}
	}
	return true
}

// fakeManifest is agent "sh" with a prompt on bottle "b", whose image is
// taken to be on the engine.
func fakeManifest(t *testing.T, runtime string) *manifest.Manifest {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`
agents:
  sh:
    bottle: b
    prompt: be brief
bottles:
  b:
    image: test/agent:1
    runtime: %s
    egress:
      allow: [example.test]
`, runtime)
	m, err := manifest.Parse(filepath.Join(dir, "bottle.yaml"), []byte(yaml), dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
