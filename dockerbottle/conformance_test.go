package dockerbottle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/backend/backendtest"
	"github.com/bottle-dev/bottle/dockerbottle"
)

// TestConformance runs the backend conformance suite against the Docker
// backend on the local engine, under each runtime.
func TestConformance(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			backendtest.Run(t, conformanceHarness(t, engine, rt))
		})
	}
}

// conformanceHarness is the suite's harness for the Docker backend on e:
// the local engine, or one reached another way (TCP with TLS, SSH), which
// is why it takes the engine. Everything it does goes through e's Engine
// API, with the base image that scripts/setup.sh builds (the test images
// are left alone: another test process's end removes every one of them).
func conformanceHarness(t *testing.T, e *dockerbottle.Engine, runtime string) backendtest.Harness {
	t.Helper()
	// A bottle taken from the warm pool keeps its pool id as the label of
	// its resources; what the suite calls a session is mapped to it here.
	var mu sync.Mutex
	labels := map[string]string{}
	return backendtest.Harness{
		Backend: e,
		Image:   baseImage,
		Runtime: runtime,
		Upstream: func(t *testing.T, b backend.Bottle, name string) string {
			info := b.Info()
			c, err := e.Client().ContainerInspect(context.Background(), info.Container)
			if err != nil {
				t.Fatalf("inspecting the agent container: %v", err)
			}
			label := c.Config.Labels[dockerbottle.LabelSession]
			mu.Lock()
			labels[info.Session] = label
			mu.Unlock()
			return startUpstream(t, e, label, name)
		},
		Leftovers: func(ctx context.Context, session string) ([]string, error) {
			mu.Lock()
			label, ok := labels[session]
			mu.Unlock()
			if !ok {
				label = session
			}
			res, err := e.Resources(ctx)
			if err != nil {
				return nil, err
			}
			var left []string
			for _, r := range res {
				if r.Session == session || r.Session == label {
					left = append(left, fmt.Sprintf("%s %s", r.Kind, r.Name))
				}
			}
			return left, nil
		},
	}
}

// startUpstream runs netprobe (HTTP on :80 answering 200) on the upstream
// network (upstreamNetwork) of the bottle whose resources carry label under alias, where only the sidecar reaches it, and
// returns its address there: a container of the base image with the
// binary copied in through the API before it starts. It carries the
// bottle's label, so the bottle's Close removes it with the rest.
func startUpstream(t *testing.T, e *dockerbottle.Engine, label, alias string) string {
	t.Helper()
	ctx := context.Background()
	netName := upstreamNetwork(t, label)
	resp, err := e.Client().ContainerCreate(ctx,
		&container.Config{Image: baseImage, Cmd: []string{"/netprobe", "serve"}, Labels: map[string]string{dockerbottle.LabelSession: label, labelTest: "1"}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName), Runtime: dockerbottle.RuntimeRunc},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{alias}}}},
		nil, "")
	if err != nil {
		t.Fatalf("creating the upstream %s: %v", alias, err)
	}
	if err := e.Client().CopyToContainer(ctx, resp.ID, "/", bytes.NewReader(upstreamTar(t)), container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("copying netprobe into the upstream %s: %v", alias, err)
	}
	if err := e.Client().ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting the upstream %s: %v", alias, err)
	}
	c, err := e.Client().ContainerInspect(ctx, resp.ID)
	if err != nil {
		t.Fatalf("inspecting the upstream %s: %v", alias, err)
	}
	return c.NetworkSettings.Networks[netName].IPAddress
}

var (
	upstreamOnce sync.Once
	upstreamTarB []byte
	upstreamErr  error
)

// upstreamTar is a tar of the netprobe binary, built once per run.
func upstreamTar(t *testing.T) []byte {
	t.Helper()
	upstreamOnce.Do(func() {
		bin := filepath.Join(workDir, "conformance-netprobe")
		if upstreamErr = goBuild(bin, "./testdata/netprobe"); upstreamErr != nil {
			return
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			upstreamErr = err
			return
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "netprobe", Mode: 0o755, Size: int64(len(data))})
		tw.Write(data)
		upstreamErr = tw.Close()
		upstreamTarB = buf.Bytes()
	})
	if upstreamErr != nil {
		t.Fatalf("building netprobe for the upstreams: %v", upstreamErr)
	}
	return upstreamTarB
}
