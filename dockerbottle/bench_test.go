package dockerbottle_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
)

// BenchmarkStartTeardownAgainstSeedCLI measures a start to ready (images
// built, no warm pool) and a teardown next to the seed's docker CLI
// sequence for the same bottle (two networks, two containers, a cp, chown
// and chmod execs, teardown),
// in the same run, and reports medians and their ratios. The engine floor
// (see engineFloor) is reported against the seed too: no start or
// teardown of this topology can have a lower ratio on the same engine.
//
//	go test -run '^$' -bench StartTeardown -benchtime 10x ./dockerbottle/
func BenchmarkStartTeardownAgainstSeedCLI(b *testing.B) {
	needEngine(b)
	for _, rt := range runtimes {
		b.Run(rt, func(b *testing.B) {
			m := parseManifest(b, fmt.Sprintf(`
agents:
  sh: {bottle: plain, command: [bash], prompt: "be careful"}
bottles:
  plain: {image: %s, runtime: %s, egress: {allow: [api.anthropic.com]}}
`, baseImage, rt), nil)
			prompt := filepath.Join(b.TempDir(), "prompt.txt")
			os.WriteFile(prompt, []byte("be careful"), 0o644)
			ctx := context.Background()
			// Warm: the sidecar image is built once per binary.
			if bt, err := engine.Start(ctx, backend.StartSpec{Manifest: m, Agent: "sh"}, nil); err != nil {
				b.Fatal(err)
			} else {
				bt.Close(ctx)
			}
			ours := func(ctx context.Context) (start, stop time.Duration, err error) {
				t0 := time.Now()
				bt, err := engine.Start(ctx, backend.StartSpec{Manifest: m, Agent: "sh"}, nil)
				if err != nil {
					return 0, 0, err
				}
				t1 := time.Now()
				inUse()
				t2 := time.Now()
				err = bt.Close(ctx)
				return t1.Sub(t0), time.Since(t2), err
			}
			var seedStart, seedStop, start, stop, bare, floorStart, floorStop []time.Duration
			subjects := []func(i int) error{
				func(i int) error {
					s1, s2, err := seedSequence(ctx, rt, prompt, i)
					seedStart, seedStop = append(seedStart, s1), append(seedStop, s2)
					return err
				},
				func(i int) error {
					d, err := bareRun(ctx, rt, 0)
					bare = append(bare, d)
					return err
				},
				func(i int) error {
					f1, f2, err := engineFloor(ctx, rt, i)
					floorStart, floorStop = append(floorStart, f1), append(floorStop, f2)
					return err
				},
				func(int) error {
					s1, s2, err := ours(ctx)
					start, stop = append(start, s1), append(stop, s2)
					return err
				},
			}
			b.ResetTimer()
			for i := range b.N {
				// Each in turn goes first, and each starts on a quiet
				// engine: the kernel tears network namespaces down in the
				// background, which would slow whatever came next.
				for j := range subjects {
					time.Sleep(time.Second)
					if err := subjects[(i+j)%len(subjects)](i); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(median(start)), "start-ms")
			b.ReportMetric(ms(median(seedStart)), "seed-start-ms")
			b.ReportMetric(ms(median(stop)), "teardown-ms")
			b.ReportMetric(ms(median(seedStop)), "seed-teardown-ms")
			b.ReportMetric(ms(median(bare)), "bare-run-ms")
			b.ReportMetric(ms(median(start))/ms(median(seedStart)), "start-ratio")
			b.ReportMetric(ms(median(start))/ms(median(bare)), "start-vs-bare-run")
			b.ReportMetric(ms(median(stop))/ms(median(seedStop)), "teardown-ratio")
			b.ReportMetric(ms(median(floorStart))/ms(median(seedStart)), "floor-start-ratio")
			b.ReportMetric(ms(median(floorStop))/ms(median(seedStop)), "floor-teardown-ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// inUse stands for the time a bottle is used between its start and its
// teardown, the same for every sequence measured: what the engine still
// does after a start returns (the kernel's network namespace work, the
// removal of the DNS guard) lands there rather than in the teardown.
func inUse() { time.Sleep(time.Second) }

// seedSequence is the seed's bottle made with the docker CLI, one command
// after another.
func seedSequence(ctx context.Context, runtime, prompt string, i int) (start, stop time.Duration, err error) {
	id := fmt.Sprintf("bottle-seed-%d-%d", os.Getpid(), i)
	// The owner's labels too: a server that starts meanwhile reaps what
	// carries a session and no live owner.
	var labels []string
	for k, v := range engine.Owner().Labels(id, "seed") {
		labels = append(labels, "--label="+k+"="+v)
	}
	docker := func(args ...string) error {
		out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker %v: %v: %s", args, err, out)
		}
		return nil
	}
	t0 := time.Now()
	steps := [][]string{
		append([]string{"network", "create", "--internal", id + "-int"}, labels...),
		append([]string{"network", "create", id + "-egress"}, labels...),
		append(append([]string{"run", "-d", "--name", id + "-proxy"}, labels...), "--network", id+"-int", baseImage, "sleep", "infinity"),
		{"network", "connect", id + "-egress", id + "-proxy"},
		append(append([]string{"run", "-d", "--name", id + "-agent"}, labels...), "--runtime", runtime, "--network", id+"-int", "--user", "node", baseImage, "sleep", "infinity"),
		{"cp", prompt, id + "-agent:/home/node/.claude-bottle-prompt.txt"},
		{"exec", "-u", "root", id + "-agent", "chown", "node:node", "/home/node/.claude-bottle-prompt.txt"},
		{"exec", "-u", "root", id + "-agent", "chmod", "600", "/home/node/.claude-bottle-prompt.txt"},
	}
	for _, s := range steps {
		if err := docker(s...); err != nil {
			docker("rm", "-f", id+"-agent", id+"-proxy")
			docker("network", "rm", id+"-int", id+"-egress")
			return 0, 0, err
		}
	}
	t1 := time.Now()
	inUse()
	t2 := time.Now()
	err = docker("rm", "-f", id+"-agent", id+"-proxy")
	if err == nil {
		err = docker("network", "rm", id+"-int", id+"-egress")
	}
	return t1.Sub(t0), time.Since(t2), err
}

// engineFloor is the least the engine does for a bottle's topology, through
// the API with everything side by side: the bottle's one network, two
// containers on it started together, the proxy also on the egress network
// that every sidecar shares (made by the warm-up start), then both removed
// and the network after them. No image check, provisioning, proxy config
// or DNS guard: what a start and a teardown cannot go below on this engine.
func engineFloor(ctx context.Context, runtime string, i int) (start, stop time.Duration, err error) {
	cli := engine.Client()
	id := fmt.Sprintf("bottle-floor-%d-%d", os.Getpid(), i)
	labels := engine.Owner().Labels(id, "floor")
	var internal, agent, proxy string
	defer func() {
		if err != nil {
			for _, c := range []string{agent, proxy} {
				cli.ContainerRemove(ctx, c, container.RemoveOptions{Force: true})
			}
			cli.NetworkRemove(ctx, internal)
		}
	}()
	t0 := time.Now()
	r, err := cli.NetworkCreate(ctx, id, network.CreateOptions{Internal: true, Labels: labels})
	if err != nil {
		return 0, 0, err
	}
	internal = r.ID
	err = parallelN(2, func(j int) error {
		rt := runtime
		if j == 1 {
			rt = dockerbottle.RuntimeRunc
		}
		r, err := cli.ContainerCreate(ctx, &container.Config{Image: baseImage, Cmd: []string{"sleep", "infinity"}, Labels: labels},
			&container.HostConfig{Runtime: rt, NetworkMode: container.NetworkMode(internal)}, nil, nil, "")
		if err != nil {
			return err
		}
		if j == 0 {
			agent = r.ID
		} else {
			proxy = r.ID
			if err := cli.NetworkConnect(ctx, dockerbottle.EgressNetwork, r.ID, nil); err != nil {
				return err
			}
		}
		return cli.ContainerStart(ctx, r.ID, container.StartOptions{})
	})
	if err != nil {
		return 0, 0, err
	}
	t1 := time.Now()
	inUse()
	t2 := time.Now()
	ids := []string{agent, proxy}
	if err := parallelN(2, func(j int) error {
		return cli.ContainerRemove(ctx, ids[j], container.RemoveOptions{Force: true})
	}); err != nil {
		return 0, 0, err
	}
	err = cli.NetworkRemove(ctx, internal)
	return t1.Sub(t0), time.Since(t2), err
}

func median[T cmp.Ordered](ds []T) T {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// bareRun is one `docker run -d` of the base image: the floor any start
// of a container pays. The container is removed after the measurement.
func bareRun(ctx context.Context, runtime string, i int) (time.Duration, error) {
	d, err := bareStart(ctx, runtime, i)
	removeBare(i)
	return d, err
}

func bareName(i int) string { return fmt.Sprintf("bottle-bare-%d-%d", os.Getpid(), i) }

// bareStart is bareRun without the removal: removeBare(i) removes it.
func bareStart(ctx context.Context, runtime string, i int) (time.Duration, error) {
	name := bareName(i)
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "docker", "run", "-d", "--name", name, "--label", "dev.bottle.session="+name,
		"--runtime", runtime, "--network", "none", baseImage, "sleep", "infinity").CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("docker run: %v: %s", err, out)
	}
	return d, nil
}

func removeBare(i int) { exec.Command("docker", "rm", "-f", bareName(i)).Run() }

// BenchmarkConcurrentStarts starts 10 bottles at once and reports the
// time until all are ready against one start alone, in the same run; and
// beside it the engine's own figure for the same: ten bare `docker run -d`
// of the base image at once against one (bare-ten-vs-one), the floor of
// any ratio of ten starts that each start a container.
func BenchmarkConcurrentStarts(b *testing.B) {
	needEngine(b)
	const n = 10
	m := parseManifest(b, fmt.Sprintf("agents: {sh: {bottle: plain, command: [bash]}}\nbottles: {plain: {image: %s, runtime: runc, egress: {allow: [x.test]}}}\n", baseImage), nil)
	ctx := context.Background()
	var one, ten, bareOne, bareTen []time.Duration
	for range b.N {
		d, err := bareRun(ctx, "runc", 0)
		if err != nil {
			b.Fatal(err)
		}
		bareOne = append(bareOne, d)
		t0 := time.Now()
		err = parallelN(n, func(i int) error { _, err := bareStart(ctx, "runc", i); return err })
		bareTen = append(bareTen, time.Since(t0))
		for i := range n {
			removeBare(i)
		}
		if err != nil {
			b.Fatal(err)
		}

		t0 = time.Now()
		bt, err := engine.Start(ctx, backend.StartSpec{Manifest: m, Agent: "sh"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		one = append(one, time.Since(t0))
		bt.Close(ctx)

		bottles := make([]backend.Bottle, n)
		t0 = time.Now()
		err = parallelN(n, func(i int) (err error) {
			bottles[i], err = engine.Start(ctx, backend.StartSpec{Manifest: m, Agent: "sh"}, nil)
			return err
		})
		ten = append(ten, time.Since(t0))
		for _, bt := range bottles {
			if bt != nil {
				bt.Close(ctx)
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(median(one)), "one-start-ms")
	b.ReportMetric(ms(median(ten)), "ten-starts-ms")
	b.ReportMetric(ms(median(ten))/ms(median(one)), "ten-vs-one")
	b.ReportMetric(ms(median(bareTen))/ms(median(bareOne)), "bare-ten-vs-one")
	b.ReportMetric(0, "ns/op")
}

func parallelN(n int, fn func(i int) error) error {
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- fn(i) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// BenchmarkTTYExecToFirstOutput measures a TTY exec from the call to its
// first output: sized (the wrapper checks the size with stty first) next
// to unsized (no stty), alternating in the same run.
//
//	go test -run '^$' -bench TTYExec -benchtime 20x ./dockerbottle/
func BenchmarkTTYExecToFirstOutput(b *testing.B) {
	needEngine(b)
	for _, rt := range runtimes {
		b.Run(rt, func(b *testing.B) {
			bt := startBottle(b, backend.StartSpec{Manifest: simpleManifest(b, rt), Agent: "sh"})
			ctx := context.Background()
			first := func(cols, rows uint) (time.Duration, error) {
				t0 := time.Now()
				p, err := bt.Exec(ctx, backend.ExecSpec{Argv: []string{"echo", "ready"}, Tty: true, Cols: cols, Rows: rows})
				if err != nil {
					return 0, err
				}
				defer p.Close()
				if _, err := readUntil(p, "ready", 30*time.Second); err != nil {
					return 0, err
				}
				d := time.Since(t0)
				_, err = p.Wait(ctx)
				return d, err
			}
			var sized, unsized []time.Duration
			for b.Loop() {
				d, err := first(100, 30)
				if err != nil {
					b.Fatal(err)
				}
				sized = append(sized, d)
				if d, err = first(0, 0); err != nil {
					b.Fatal(err)
				}
				unsized = append(unsized, d)
			}
			b.ReportMetric(float64(median(sized).Microseconds())/1000, "sized-ms")
			b.ReportMetric(float64(median(unsized).Microseconds())/1000, "unsized-ms")
			b.ReportMetric(float64(median(sized))/float64(median(unsized)), "sized-ratio")
		})
	}
}
