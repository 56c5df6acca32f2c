package dockerbottle_test

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
)

// BenchmarkEgressSidecar measures what the sidecar costs: per-request
// latency and CONNECT throughput through it, against a direct
// container-to-container connection on the egress network, in the same
// run and from the same client (a container on both of the bottle's
// networks, so that the only difference is the sidecar).
//
//	go test -run '^$' -bench EgressSidecar -benchtime 1x ./dockerbottle/
//
// Metrics: *-us are medians in microseconds, *-MBps throughputs, *-ratio
// proxied over direct (latency: how many times slower; throughput: the
// fraction kept).
func BenchmarkEgressSidecar(b *testing.B) {
	needEngine(b)
	m := egressManifest(b, "runc", `
allow: [upstream.test, "upstream.test:7", "upstream.test:9000"]
trusted: [upstream.test]
`, nil)
	started, err := engine.Start(context.Background(), backend.StartSpec{Manifest: m, Agent: "sh"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { started.Close(context.Background()) })
	bt := started.(*dockerbottle.Bottle)
	session := bt.Info().Session
	upstream := startNetprobe(b, session, "upstream.test")
	nets := []string{"bottle-" + session + "-internal", "bottle-" + session + "-egress"}
	proxy := bt.Info().ProxyAddr

	measure := func(args ...string) map[string]float64 {
		out, code := runNetprobe(b, session, nets, append([]string{"bench"}, args...)...)
		if code != 0 {
			b.Fatalf("bench %v: %s", args, out)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			b.Fatalf("bench %v: %q: %v", args, out, err)
		}
		nums := map[string]float64{}
		for k, v := range res {
			if f, ok := v.(float64); ok {
				nums[k] = f
			}
		}
		return nums
	}
	const requests, connects = "500", "200"
	download := strconv.Itoa(1 << 30)
	samples := map[string][]float64{}
	add := func(name string, v float64) { samples[name] = append(samples[name], v) }
	b.ResetTimer()
	for range b.N {
		latDirect := measure("latency", "-url", "http://"+upstream+"/", "-n", requests)
		latProxy := measure("latency", "-proxy", proxy, "-url", "http://upstream.test/", "-n", requests)
		conDirect := measure("connect", "-target", net.JoinHostPort(upstream, "7"), "-n", connects)
		conProxy := measure("connect", "-proxy", proxy, "-target", "upstream.test:7", "-n", connects)
		dlDirect := measure("download", "-target", net.JoinHostPort(upstream, "9000"), "-bytes", download)
		dlProxy := measure("download", "-proxy", proxy, "-target", "upstream.test:9000", "-bytes", download)

		add("http-direct-us", latDirect["median_us"])
		add("http-proxied-us", latProxy["median_us"])
		add("http-added-us", latProxy["median_us"]-latDirect["median_us"])
		add("http-ratio", latProxy["median_us"]/latDirect["median_us"])
		add("connect-direct-us", conDirect["median_us"])
		add("connect-proxied-us", conProxy["median_us"])
		add("connect-added-us", conProxy["median_us"]-conDirect["median_us"])
		add("connect-ratio", conProxy["median_us"]/conDirect["median_us"])
		add("tunnel-direct-MBps", dlDirect["mbps"])
		add("tunnel-proxied-MBps", dlProxy["mbps"])
		add("tunnel-ratio", dlProxy["mbps"]/dlDirect["mbps"])
	}
	b.StopTimer()
	// Medians over the iterations: one noisy round moves nothing.
	for name, vs := range samples {
		b.ReportMetric(median(vs), name)
	}
	b.ReportMetric(0, "ns/op")
}
