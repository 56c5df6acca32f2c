package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/rpc"
)

// BenchmarkApprovalEndToEnd times a question's two legs through the real
// server, on the host's wall clock, which the bottle, the upstream and the
// test share:
//
//   - from the agent's CONNECT (stamped in the bottle) to the editor's
//     receipt of bottle/egressApproval: the sidecar's stdout, the Engine
//     API's attach stream, dockerbottle, session, rpc and the JSON-RPC pipe;
//   - from the editor's allowOnce (stamped as it is written) back down the
//     same way to the agent's first byte at the upstream (stamped there).
//
// The baseline is an allowlisted CONNECT's time to its first byte at the
// same upstream through the same sidecar, taken alternately with the
// questions. The time a person takes to answer is not in it.
// clock-offset-ms says how far the upstream's clock stood from the
// bottle's (under gVisor the bottle keeps its own, following the host's):
// the legs are good to about that much.
//
//	go test -run '^$' -bench ApprovalEndToEnd -benchtime 5x ./integration/
func BenchmarkApprovalEndToEnd(b *testing.B) {
	bin := buildFirstByte(b)
	for _, rt := range benchRuntimes() {
		b.Run(rt, func(b *testing.B) {
			e := newApprover(b)
			sess := e.start(rpc.StartParams{Agent: "sh", Manifest: firstByteManifest(b, rt)}).Session
			startFirstByteUpstream(b, sess, bin)
			const agentBin = "/home/node/firstbyte"
			e.call(rpc.MethodCp, rpc.CpParams{Session: sess, HostPath: bin, ContainerPath: agentBin}, &rpc.CpResult{})

			var base, toAsk, toByte, offset []time.Duration
			var askedTimes []time.Time
			for range b.N {
				st := e.firstByte(e.exec(sess, false, agentBin, "connect", "base.test:7000"))
				base = append(base, st.upstream.Sub(st.sent))
				offset = append(offset, st.offset())

				// The sidecar asks at most 10 questions a minute
				// (egress.askRate): a longer run waits for the window.
				if k := len(askedTimes); k >= 10 {
					time.Sleep(time.Until(askedTimes[k-10].Add(time.Minute + time.Second)))
				}
				n := e.questions() + 1
				id := e.exec(sess, false, agentBin, "connect", "ask.test:7000")
				q := e.waitAsked(n)
				if want := (rpc.EgressApprovalParams{Session: sess, Method: "CONNECT", Host: "ask.test", Port: 7000}); q.params != want {
					b.Fatalf("question = %+v, want %+v", q.params, want)
				}
				askedAt := e.askReceived(n)
				askedTimes = append(askedTimes, askedAt)
				answered := time.Now()
				if err := q.reply(context.Background(), rpc.EgressApprovalResult{Decision: rpc.ApprovalAllowOnce}, nil); err != nil {
					b.Fatal(err)
				}
				st = e.firstByte(id)
				toAsk = append(toAsk, askedAt.Sub(st.sent))
				toByte = append(toByte, st.upstream.Sub(answered))
				offset = append(offset, st.offset())
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(median(toAsk)), "connect-to-ask-ms")
			b.ReportMetric(ms(median(toByte)), "answer-to-byte-ms")
			b.ReportMetric(ms(median(base)), "baseline-ms")
			b.ReportMetric(float64(median(toAsk))/float64(median(base)), "ask/baseline")
			b.ReportMetric(float64(median(toByte))/float64(median(base)), "answer/baseline")
			b.ReportMetric(ms(median(offset)), "clock-offset-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// buildFirstByte builds testdata/firstbyte, static, for the bottle and the
// upstream alike.
func buildFirstByte(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "firstbyte")
	gb := exec.Command("go", "build", "-o", bin, "./testdata/firstbyte")
	gb.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gb.CombinedOutput(); err != nil {
		b.Fatalf("building firstbyte: %v\n%s", err, out)
	}
	return bin
}

// firstByteManifest: agent sh on the base image; base.test:7000 is on the
// allowlist and ask.test is not. Both are the upstream, on a private
// subnet, so both are trusted (the SSRF guard would refuse them otherwise).
func firstByteManifest(b *testing.B, runtime string) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bottle.yaml")
	y := fmt.Sprintf(`agents:
  sh: {bottle: b, command: [bash]}
bottles:
  b:
    image: "bottle/base:bookworm"
    runtime: %s
    egress:
      allow: ["base.test:7000"]
      trusted: [ask.test, base.test]
      ask_timeout: 60s
`, runtime)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// startFirstByteUpstream runs firstbyte serve from the base image, the
// binary mounted read-only, on the session's upstream network
// (upstreamNetwork) as ask.test and base.test, labelled with the session so
// that bottle/close removes it.
func startFirstByteUpstream(b *testing.B, session, bin string) {
	b.Helper()
	cli := dockerClient(b)
	netName := upstreamNetwork(b, session)
	ctx := context.Background()
	resp, err := cli.ContainerCreate(ctx,
		&container.Config{Image: "bottle/base:bookworm", Entrypoint: []string{"/firstbyte", "serve"}, Labels: map[string]string{dockerbottle.LabelSession: session}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName),
			Mounts: []mount.Mount{{Type: mount.TypeBind, Source: bin, Target: "/firstbyte", ReadOnly: true}}},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{"ask.test", "base.test"}}}}, nil, "")
	if err != nil {
		b.Fatalf("creating the upstream: %v", err)
	}
	b.Cleanup(func() { cli.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true}) })
	if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		b.Fatalf("starting the upstream: %v", err)
	}
}

// stamps are a firstbyte connection's times: when the agent opened its
// connection to the proxy, when it wrote its byte into the tunnel, when the
// byte reached the upstream and when the upstream's answer was back.
type stamps struct{ sent, wrote, upstream, back time.Time }

// offset estimates how far the upstream's clock is ahead of the agent's:
// the upstream's stamp against the middle of the byte's round trip. The
// legs that set one clock against another are good to about this much.
func (s stamps) offset() time.Duration {
	return s.upstream.Sub(s.wrote) - s.back.Sub(s.wrote)/2
}

// firstByte waits for a firstbyte connect exec and returns its stamps.
func (e *editor) firstByte(exec string) stamps {
	e.t.Helper()
	ex := e.waitExit(exec)
	var s, w, u, k int64
	if _, err := fmt.Sscanf(e.output(exec), "sent=%d wrote=%d upstream=%d back=%d\n", &s, &w, &u, &k); ex.Code != 0 || err != nil {
		e.t.Fatalf("firstbyte exited %d with %q", ex.Code, e.output(exec))
	}
	return stamps{time.Unix(0, s), time.Unix(0, w), time.Unix(0, u), time.Unix(0, k)}
}

// askReceived returns when the editor took in its n-th question (from 1).
func (e *editor) askReceived(n int) time.Time {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := 0
	for _, m := range e.notes {
		if m.method == rpc.MethodEgressApproval {
			if seen++; seen == n {
				return m.at
			}
		}
	}
	e.t.Fatalf("no question #%d among the editor's messages", n)
	return time.Time{}
}
