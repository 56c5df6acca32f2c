package dockerbottle

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/manifest"
)

// tracedAPI times the engine calls a start and a teardown make, to show
// where a cold start spends its time (BenchmarkColdStartTrace).
type tracedAPI struct {
	engineAPI
	t0 time.Time

	mu     sync.Mutex
	names  map[string]string // container id -> what it is
	events []traceEvent
}

type traceEvent struct {
	call, who string
	at, dur   time.Duration
}

func (t *tracedAPI) record(call, who string, t0 time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, traceEvent{call: call, who: who, at: t0.Sub(t.t0), dur: time.Since(t0)})
}

func (t *tracedAPI) who(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.names[id]; ok {
		return n
	}
	return fmt.Sprintf("%.12s", id)
}

func (t *tracedAPI) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.t0, t.events = time.Now(), nil
}

// traced times call, one op on who, and returns what it returned.
func traced[R any](t *tracedAPI, op, who string, call func() (R, error)) (R, error) {
	t0 := time.Now()
	r, err := call()
	t.record(op, who, t0)
	return r, err
}

// tracedErr is traced for the calls that return only an error.
func tracedErr(t *tracedAPI, op, who string, call func() error) error {
	_, err := traced(t, op, who, func() (struct{}, error) { return struct{}{}, call() })
	return err
}

func (t *tracedAPI) NetworkCreate(ctx context.Context, name string, opts network.CreateOptions) (network.CreateResponse, error) {
	return traced(t, "NetworkCreate", name, func() (network.CreateResponse, error) { return t.engineAPI.NetworkCreate(ctx, name, opts) })
}

func (t *tracedAPI) NetworkConnect(ctx context.Context, net, id string, cfg *network.EndpointSettings) error {
	return tracedErr(t, "NetworkConnect", t.who(id), func() error { return t.engineAPI.NetworkConnect(ctx, net, id, cfg) })
}

func (t *tracedAPI) NetworkList(ctx context.Context, opts network.ListOptions) ([]network.Summary, error) {
	return traced(t, "NetworkList", "", func() ([]network.Summary, error) { return t.engineAPI.NetworkList(ctx, opts) })
}

func (t *tracedAPI) NetworkRemove(ctx context.Context, id string) error {
	return tracedErr(t, "NetworkRemove", fmt.Sprintf("%.12s", id), func() error { return t.engineAPI.NetworkRemove(ctx, id) })
}

// ContainerCreate also names the new container, for the calls on it that
// follow.
func (t *tracedAPI) ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, p *ocispec.Platform, name string) (container.CreateResponse, error) {
	who := cfg.Labels[LabelRole] + "/" + host.Runtime
	r, err := traced(t, "ContainerCreate", who, func() (container.CreateResponse, error) {
		return t.engineAPI.ContainerCreate(ctx, cfg, host, net, p, name)
	})
	t.mu.Lock()
	t.names[r.ID] = who
	t.mu.Unlock()
	return r, err
}

func (t *tracedAPI) ContainerStart(ctx context.Context, id string, opts container.StartOptions) error {
	return tracedErr(t, "ContainerStart", t.who(id), func() error { return t.engineAPI.ContainerStart(ctx, id, opts) })
}

func (t *tracedAPI) ContainerAttach(ctx context.Context, id string, opts container.AttachOptions) (types.HijackedResponse, error) {
	return traced(t, "ContainerAttach", t.who(id), func() (types.HijackedResponse, error) { return t.engineAPI.ContainerAttach(ctx, id, opts) })
}

func (t *tracedAPI) ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error {
	return tracedErr(t, "ContainerRemove", t.who(id), func() error { return t.engineAPI.ContainerRemove(ctx, id, opts) })
}

func (t *tracedAPI) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	return traced(t, "ContainerList", "", func() ([]container.Summary, error) { return t.engineAPI.ContainerList(ctx, opts) })
}

func (t *tracedAPI) CopyToContainer(ctx context.Context, id, dir string, content io.Reader, opts container.CopyToContainerOptions) error {
	return tracedErr(t, "CopyToContainer", t.who(id), func() error { return t.engineAPI.CopyToContainer(ctx, id, dir, content, opts) })
}

// BenchmarkColdStartTrace prints the engine calls of one cold start and
// its teardown as a timeline, then the calls of ten starts made at once,
// summed by kind: where a start spends its time, and what ten at once
// queue on.
//
//	go test -run '^$' -bench ColdStartTrace -benchtime 1x ./dockerbottle/
func BenchmarkColdStartTrace(b *testing.B) {
	dir := b.TempDir()
	proxy := filepath.Join(dir, "bottle-rpc")
	build := exec.Command("go", "build", "-o", proxy, "github.com/bottle-dev/bottle/cmd/bottle-rpc")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	tr := &tracedAPI{engineAPI: cli, names: map[string]string{}}
	e, err := newEngine(tr, Options{ProxyBinary: proxy})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	for _, rt := range []string{RuntimeRunc, RuntimeRunsc} {
		y := fmt.Sprintf("agents: {sh: {bottle: plain, command: [bash], prompt: be careful}}\nbottles: {plain: {image: bottle/base:bookworm, runtime: %s, egress: {allow: [x.test]}}}\n", rt)
		m, err := manifest.Parse(filepath.Join(dir, "bottle.yaml"), []byte(y), dir)
		if err != nil {
			b.Fatal(err)
		}
		spec := backend.StartSpec{Manifest: m, Agent: "sh"}
		// Warm the images, then one start and teardown, traced.
		bt, err := e.Start(ctx, spec, nil)
		if err != nil {
			b.Fatal(err)
		}
		bt.Close(ctx)
		time.Sleep(time.Second)
		for range b.N {
			tr.reset()
			bt, err := e.Start(ctx, spec, nil)
			if err != nil {
				b.Fatal(err)
			}
			started := time.Since(tr.t0)
			time.Sleep(time.Second)
			tr.mu.Lock()
			closeAt := time.Since(tr.t0)
			tr.mu.Unlock()
			if err := bt.Close(ctx); err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(os.Stderr, "%s: one start %v, teardown %v\n", rt, started.Round(time.Millisecond), (time.Since(tr.t0) - closeAt).Round(time.Millisecond))
			fmt.Fprintln(os.Stderr, tr.timeline())
			time.Sleep(time.Second)
			if rt != RuntimeRunc {
				continue
			}
			tr.reset()
			const n = 10
			bts := make([]backend.Bottle, n)
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					bts[i], errs[i] = e.Start(ctx, spec, nil)
				}()
			}
			wg.Wait()
			ten := time.Since(tr.t0)
			summary := tr.summary()
			for _, bt := range bts {
				if bt != nil {
					bt.Close(ctx)
				}
			}
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			fmt.Fprintf(os.Stderr, "%s: ten starts at once %v (%.1fx one)\n%s\n", rt, ten.Round(time.Millisecond), float64(ten)/float64(started), summary)
			time.Sleep(time.Second)
		}
	}
}

func (t *tracedAPI) timeline() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	evs := slices.Clone(t.events)
	sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	var sb strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&sb, "  %6d ms %+6d ms  %-16s %s\n", ev.at.Milliseconds(), ev.dur.Milliseconds(), ev.call, ev.who)
	}
	return sb.String()
}

// summary is the calls by kind: how many, median and longest, and when
// the last one ended.
func (t *tracedAPI) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	by := map[string][]traceEvent{}
	for _, ev := range t.events {
		k := ev.call + " " + strings.SplitN(ev.who, "/", 2)[0]
		if ev.call == "NetworkCreate" {
			k = ev.call
		}
		by[k] = append(by[k], ev)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range by {
			if !yield(k) {
				return
			}
		}
	})
	var sb strings.Builder
	for _, k := range keys {
		evs := by[k]
		ds := make([]time.Duration, len(evs))
		var first, last time.Duration = time.Hour, 0
		for i, ev := range evs {
			ds[i] = ev.dur
			first, last = min(first, ev.at), max(last, ev.at+ev.dur)
		}
		slices.Sort(ds)
		fmt.Fprintf(&sb, "  %-28s n=%2d median %5d ms max %5d ms  from %5d to %5d ms\n", k, len(evs), ds[len(ds)/2].Milliseconds(), ds[len(ds)-1].Milliseconds(), first.Milliseconds(), last.Milliseconds())
	}
	return sb.String()
}
