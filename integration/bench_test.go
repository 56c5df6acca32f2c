package integration

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/bottle-dev/bottle/rpc"
)

// Benchmarks print figures as ratios against a baseline measured in the
// same run; they assert nothing about time.
//
//	go test -run '^$' -bench . -benchtime 3x ./integration/

const ptyBytes = 50 << 20

func benchRuntimes() []string { return []string{"runc", "runsc"} }

// BenchmarkPtyThroughput: 50 MB of pty output through the server and the
// protocol, against `docker exec -t` on the same container.
func BenchmarkPtyThroughput(b *testing.B) {
	for _, rt := range benchRuntimes() {
		b.Run(rt, func(b *testing.B) {
			e := newEditor(b)
			started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(b, rt)})
			var ours, docker []time.Duration
			argv := []string{"head", "-c", fmt.Sprint(ptyBytes), "/dev/zero"}
			for range b.N {
				t0 := time.Now()
				var res rpc.ExecResult
				tty := true
				if err := e.try(rpc.MethodExec, rpc.ExecParams{Session: started.Session, Argv: argv, Tty: &tty}, &res); err != nil {
					b.Fatal(err)
				}
				e.waitExit(res.Exec)
				ours = append(ours, time.Since(t0))
				if n := len(e.output(res.Exec)); n != ptyBytes {
					b.Fatalf("got %d bytes, want %d", n, ptyBytes)
				}
				e.dropOutput(res.Exec)

				t0 = time.Now()
				cmd := exec.Command("docker", append([]string{"exec", "-t", started.ContainerID}, argv...)...)
				out, err := cmd.Output()
				if err != nil || len(out) != ptyBytes {
					b.Fatalf("docker exec -t: %v, %d bytes", err, len(out))
				}
				docker = append(docker, time.Since(t0))
			}
			mbps := func(d time.Duration) float64 { return float64(ptyBytes) / (1 << 20) / d.Seconds() }
			b.ReportMetric(mbps(median(ours)), "server-MB/s")
			b.ReportMetric(mbps(median(docker)), "docker-exec-t-MB/s")
			b.ReportMetric(mbps(median(ours))/mbps(median(docker)), "throughput-ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkEchoLatency: a keystroke's round trip to `cat` in a pty through
// the server, against the same round trip on a raw exec attach.
func BenchmarkEchoLatency(b *testing.B) {
	const keys = 200
	for _, rt := range benchRuntimes() {
		b.Run(rt, func(b *testing.B) {
			e := newEditor(b)
			started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(b, rt)})
			var ours, raw []time.Duration
			for range b.N {
				var res rpc.ExecResult
				tty := true
				if err := e.try(rpc.MethodExec, rpc.ExecParams{Session: started.Session, Argv: []string{"cat"}, Tty: &tty}, &res); err != nil {
					b.Fatal(err)
				}
				for i := range keys {
					c := string(rune('a' + i%26))
					before := len(e.output(res.Exec))
					t0 := time.Now()
					e.input(res.Exec, c)
					e.waitUntil("echo", time.Minute, func() bool { return e.outputs[res.Exec] != nil && e.outputs[res.Exec].Len() > before })
					ours = append(ours, time.Since(t0))
				}
				e.try(rpc.MethodKill, rpc.KillParams{Exec: res.Exec}, nil)

				raw = append(raw, rawEcho(b, started.ContainerID, keys)...)
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(percentile(ours, 50)), "server-p50-ms")
			b.ReportMetric(ms(percentile(ours, 99)), "server-p99-ms")
			b.ReportMetric(ms(percentile(raw, 50)), "raw-p50-ms")
			b.ReportMetric(ms(percentile(raw, 99)), "raw-p99-ms")
			b.ReportMetric(ms(percentile(ours, 99))-ms(percentile(raw, 99)), "p99-added-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// rawEcho measures keystroke round trips on an exec attached straight
// through the Engine API, without the server.
func rawEcho(b *testing.B, containerID string, keys int) []time.Duration {
	ctx := context.Background()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	x, err := cli.ContainerExecCreate(ctx, containerID, container.ExecOptions{User: "node", Tty: true, AttachStdin: true, AttachStdout: true, Cmd: []string{"cat"}})
	if err != nil {
		b.Fatal(err)
	}
	hj, err := cli.ContainerExecAttach(ctx, x.ID, container.ExecAttachOptions{Tty: true})
	if err != nil {
		b.Fatal(err)
	}
	defer hj.Close()
	var out []time.Duration
	buf := make([]byte, 64)
	for i := range keys {
		t0 := time.Now()
		hj.Conn.Write([]byte{byte('a' + i%26)})
		if _, err := hj.Reader.Read(buf); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

// BenchmarkServerRSS: the server's resident memory with 10 idle sessions,
// against the same server with none.
func BenchmarkServerRSS(b *testing.B) {
	for range b.N {
		e := newEditor(b)
		time.Sleep(time.Second)
		idle := rssKiB(b, e.cmd.Process.Pid)
		m := writeManifest(b, "runc")
		for range 10 {
			var res rpc.StartResult
			if err := e.try(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: m}, &res); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		ten := rssKiB(b, e.cmd.Process.Pid)
		b.ReportMetric(float64(idle)/1024, "rss-0-sessions-MiB")
		b.ReportMetric(float64(ten)/1024, "rss-10-sessions-MiB")
		b.ReportMetric(float64(ten)/float64(idle), "rss-ratio")
		b.ReportMetric(0, "ns/op")
	}
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}
