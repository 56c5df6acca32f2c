package integration

import (
	"context"
	"encoding/json"
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
// protocol, against `docker exec -t` on the same container. The client is
// a lean one, as an editor's would be: it decodes each output message and
// acknowledges it, and keeps nothing.
func BenchmarkPtyThroughput(b *testing.B) {
	for _, rt := range benchRuntimes() {
		b.Run(rt, func(b *testing.B) {
			c := startRaw(b)
			c.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
			c.next()
			c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"bottle/start","params":{"agent":"sh","manifest":%q}}`, writeManifest(b, rt)))
			var started rpc.StartResult
			if r := c.next(); r.Error != nil || json.Unmarshal(r.Result, &started) != nil {
				b.Fatalf("start: %+v", r.Error)
			}
			argv := []string{"head", "-c", fmt.Sprint(ptyBytes), "/dev/zero"}
			var ours, docker []time.Duration
			for i := range b.N {
				t0 := time.Now()
				if n := c.drain(b, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"bottle/exec","params":{"session":%q,"argv":["head","-c","%d","/dev/zero"],"tty":true}}`, 10+i, started.Session, ptyBytes)); n != ptyBytes {
					b.Fatalf("got %d bytes, want %d", n, ptyBytes)
				}
				ours = append(ours, time.Since(t0))

				t0 = time.Now()
				out, err := exec.Command("docker", append([]string{"exec", "-t", started.ContainerID}, argv...)...).Output()
				if err != nil || len(out) != ptyBytes {
					b.Fatalf("docker exec -t: %v, %d bytes", err, len(out))
				}
				docker = append(docker, time.Since(t0))
			}
			c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"bottle/close","params":{"session":%q}}`, started.Session))
			c.next()
			mbps := func(d time.Duration) float64 { return float64(ptyBytes) / (1 << 20) / d.Seconds() }
			b.ReportMetric(mbps(median(ours)), "server-MB/s")
			b.ReportMetric(mbps(median(docker)), "docker-exec-t-MB/s")
			b.ReportMetric(mbps(median(ours))/mbps(median(docker)), "throughput-ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// drain sends an exec request and reads until its bottle/exit,
// acknowledging every output message; it returns the bytes received.
func (c *rawClient) drain(b *testing.B, request string) int {
	c.send(request)
	var exec string
	n := 0
	for {
		var m struct {
			Method string          `json:"method"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
			Params struct {
				Exec string `json:"exec"`
				Data []byte `json:"data"`
			} `json:"params"`
		}
		if err := json.Unmarshal(c.frame(), &m); err != nil {
			b.Fatal(err)
		}
		switch m.Method {
		case "":
			var res rpc.ExecResult
			if m.Error != nil || json.Unmarshal(m.Result, &res) != nil {
				b.Fatalf("exec: %s", m.Error)
			}
			exec = res.Exec
		case rpc.MethodOutput:
			n += len(m.Params.Data)
			c.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"bottle/ack","params":{"exec":%q,"bytes":%d}}`, m.Params.Exec, len(m.Params.Data)))
		case rpc.MethodExecExit:
			if m.Params.Exec == exec {
				return n
			}
		}
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
				ours = append(ours, echoRound(b, e, started.Session, keys)...)

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
