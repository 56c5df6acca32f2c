package integration

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/rpc"
)

// The daemon's benchmarks set what a client gets through `serve
// --remote=SOCKET` (the forwarder and the daemon behind it) against the
// in-process `serve`, in the same run. The hop is the same for every
// runtime, so they run under runc only.
//
//	go test -run '^$' -bench Daemon -benchtime 5x ./integration/

// initStart initializes a raw client and starts a bottle of the sh agent
// under runc (persistent or not); it returns the bottle and the
// initialize result.
func (c *rawClient) initStart(b *testing.B, persist bool) (rpc.StartResult, rpc.InitializeResult) {
	b.Helper()
	var init rpc.InitializeResult
	c.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	if r := c.next(); r.Error != nil || json.Unmarshal(r.Result, &init) != nil {
		b.Fatalf("initialize: %+v", r.Error)
	}
	c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"bottle/start","params":{"agent":"sh","manifest":%q,"persist":%t}}`, writeManifest(b, "runc"), persist))
	var started rpc.StartResult
	if r := c.next(); r.Error != nil || json.Unmarshal(r.Result, &started) != nil {
		b.Fatalf("start: %+v", r.Error)
	}
	b.Cleanup(func() {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"bottle/close","params":{"session":%q}}`, started.Session))
	})
	return started, init
}

// BenchmarkDaemonPtyThroughput: BenchmarkPtyThroughput's 50 MB of pty
// output through the forwarder and the daemon, against the in-process
// server, alternating, each to a lean client.
func BenchmarkDaemonPtyThroughput(b *testing.B) {
	d := startDaemon(b)
	local, remote := startRaw(b), startRaw(b, "serve", "--remote="+d.socket)
	localStarted, _ := local.initStart(b, false)
	remoteStarted, _ := remote.initStart(b, false)
	var ours, theirs []time.Duration
	for i := range b.N {
		for _, x := range []struct {
			c    *rawClient
			sess string
			into *[]time.Duration
		}{{remote, remoteStarted.Session, &ours}, {local, localStarted.Session, &theirs}} {
			t0 := time.Now()
			if n := x.c.drain(b, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"bottle/exec","params":{"session":%q,"argv":["head","-c","%d","/dev/zero"],"tty":true}}`, 10+i, x.sess, ptyBytes)); n != ptyBytes {
				b.Fatalf("got %d bytes, want %d", n, ptyBytes)
			}
			*x.into = append(*x.into, time.Since(t0))
		}
	}
	mbps := func(d time.Duration) float64 { return float64(ptyBytes) / (1 << 20) / d.Seconds() }
	b.ReportMetric(mbps(median(ours)), "daemon-MB/s")
	b.ReportMetric(mbps(median(theirs)), "in-process-MB/s")
	b.ReportMetric(mbps(median(ours))/mbps(median(theirs)), "throughput-ratio")
	b.ReportMetric(0, "ns/op")
}

// echoRound types keys one at a time into a fresh `cat` in a pty and
// times each until its echo is back.
func echoRound(b *testing.B, e *editor, session string, keys int) []time.Duration {
	b.Helper()
	var res rpc.ExecResult
	tty := true
	if err := e.try(rpc.MethodExec, rpc.ExecParams{Session: session, Argv: []string{"cat"}, Tty: &tty}, &res); err != nil {
		b.Fatal(err)
	}
	var out []time.Duration
	for i := range keys {
		c := string(rune('a' + i%26))
		before := len(e.output(res.Exec))
		t0 := time.Now()
		e.input(res.Exec, c)
		e.waitUntil("echo", time.Minute, func() bool { return e.outputs[res.Exec] != nil && e.outputs[res.Exec].Len() > before })
		out = append(out, time.Since(t0))
	}
	//lint:ignore S1016 a request built from a result whose fields match it by chance
	e.try(rpc.MethodKill, rpc.KillParams{Exec: res.Exec}, nil)
	return out
}

// BenchmarkDaemonEchoLatency: BenchmarkEchoLatency's keystroke round
// trip through the forwarder and the daemon, against the in-process
// server, alternating.
func BenchmarkDaemonEchoLatency(b *testing.B) {
	const keys = 200
	d := startDaemon(b)
	local, remote := newEditor(b), newClient(b, d)
	localStarted := local.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(b, "runc")})
	remoteStarted := remote.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(b, "runc")})
	var ours, theirs []time.Duration
	for range b.N {
		ours = append(ours, echoRound(b, remote.editor, remoteStarted.Session, keys)...)
		theirs = append(theirs, echoRound(b, local, localStarted.Session, keys)...)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(ours, 50)), "daemon-p50-ms")
	b.ReportMetric(ms(percentile(ours, 99)), "daemon-p99-ms")
	b.ReportMetric(ms(percentile(theirs, 50)), "in-process-p50-ms")
	b.ReportMetric(ms(percentile(theirs, 99)), "in-process-p99-ms")
	b.ReportMetric(ms(percentile(ours, 99))-ms(percentile(theirs, 99)), "p99-added-ms")
	b.ReportMetric(0, "ns/op")
}

// frameOf is the part of a message the attach benchmark reads.
type frameOf struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Error  json.RawMessage `json:"error"`
	Result json.RawMessage `json:"result"`
	Params struct {
		Exec   string `json:"exec"`
		Data   []byte `json:"data"`
		Replay bool   `json:"replay"`
	} `json:"params"`
}

// read reads the next message, acknowledging output.
func (c *rawClient) read(b *testing.B) frameOf {
	var m frameOf
	if err := json.Unmarshal(c.frame(), &m); err != nil {
		b.Fatal(err)
	}
	if m.Method == rpc.MethodOutput {
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"bottle/ack","params":{"exec":%q,"bytes":%d}}`, m.Params.Exec, len(m.Params.Data)))
	}
	return m
}

// BenchmarkDaemonAttachReplay: bottle/attach to a bottle whose exec has a
// full 1 MiB scrollback, from the request to the last replayed byte,
// through the forwarder. Baseline: 1 MiB of live output of a new exec
// through the same forwarder, from its first byte to its last.
func BenchmarkDaemonAttachReplay(b *testing.B) {
	d := startDaemon(b)
	c := startRaw(b, "serve", "--remote="+d.socket)
	started, init := c.initStart(b, true)
	scrollback := init.Capabilities.Scrollback
	// Twice the scrollback, then quiet: the exec runs on with a full one.
	c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":4,"method":"bottle/exec","params":{"session":%q,"argv":["sh","-c","head -c %d /dev/zero | tr '\\\\0' x; exec sleep 1000000"],"tty":false}}`, started.Session, 2*scrollback))
	var full string
	for n := 0; n < 2*scrollback; {
		m := c.read(b)
		switch {
		case m.Method == "" && m.Error != nil:
			b.Fatalf("exec: %s", m.Error)
		case m.Method == "" && string(m.ID) == "4":
			var res rpc.ExecResult
			json.Unmarshal(m.Result, &res)
			full = res.Exec
		case m.Method == rpc.MethodOutput:
			n += len(m.Params.Data)
		case m.Method == rpc.MethodExecExit:
			b.Fatal("the exec that keeps a full scrollback ended")
		}
	}
	c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":5,"method":"bottle/detach","params":{"session":%q}}`, started.Session))
	if r := c.next(); r.Error != nil {
		b.Fatalf("detach: %+v", r.Error)
	}

	var attach, live []time.Duration
	id := 10
	for range b.N {
		id++
		t0 := time.Now()
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"bottle/attach","params":{"session":%q}}`, id, started.Session))
		for n := 0; n < scrollback; {
			m := c.read(b)
			switch {
			case m.Method == "" && m.Error != nil:
				b.Fatalf("attach: %s", m.Error)
			case m.Method == rpc.MethodOutput && m.Params.Exec == full:
				if !m.Params.Replay {
					b.Fatal("live output from an exec that is quiet")
				}
				n += len(m.Params.Data)
			}
		}
		attach = append(attach, time.Since(t0))
		id++
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"bottle/detach","params":{"session":%q}}`, id, started.Session))
		for m := c.read(b); m.Method != "" || string(m.ID) != fmt.Sprint(id); m = c.read(b) {
		}

		id++
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"bottle/exec","params":{"session":%q,"argv":["head","-c","%d","/dev/zero"],"tty":false}}`, id, started.Session, scrollback))
		var first time.Time
		for n := 0; n < scrollback; {
			m := c.read(b)
			if m.Method == "" && m.Error != nil {
				b.Fatalf("exec: %s", m.Error)
			}
			if m.Method == rpc.MethodOutput && m.Params.Exec != full {
				if n == 0 {
					first = time.Now()
				}
				n += len(m.Params.Data)
			}
		}
		live = append(live, time.Since(first))
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(median(attach)), "attach-to-last-replayed-ms")
	b.ReportMetric(ms(median(live)), "live-1MiB-ms")
	b.ReportMetric(float64(median(attach))/float64(median(live)), "attach-ratio")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDaemonRSS: the daemon's resident memory with 10 detached
// persistent bottles, each with an exec whose 1 MiB scrollback is full,
// against the same daemon idle and with the 10 bottles before their
// execs.
func BenchmarkDaemonRSS(b *testing.B) {
	const bottles = 10
	d := startDaemon(b)
	e := newClient(b, d)
	time.Sleep(time.Second)
	idle := rssKiB(b, d.cmd.Process.Pid)
	m := writeManifest(b, "runc")
	var sessions []string
	for range bottles {
		var res rpc.StartResult
		if err := e.try(rpc.MethodStart, rpc.StartParams{Agent: "sh", Manifest: m, Persist: true}, &res); err != nil {
			b.Fatal(err)
		}
		sessions = append(sessions, res.Session)
	}
	time.Sleep(2 * time.Second)
	started := rssKiB(b, d.cmd.Process.Pid)
	scrollback := e.init.Capabilities.Scrollback
	var execs []string
	for _, s := range sessions {
		execs = append(execs, e.exec(s, false, "sh", "-c", fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; exec sleep 1000000", scrollback+scrollback/4)))
	}
	for i, x := range execs {
		waitFor(b, "exec "+x+" to fill its scrollback", 2*time.Minute, func() bool { return e.execInfo(x).Output >= int64(scrollback+scrollback/4) })
		e.call(rpc.MethodDetach, rpc.DetachParams{Session: sessions[i]}, nil)
	}
	// No client at all: the daemon holds only the bottles.
	e.conn.Close()
	e.stdin.Close()
	e.waitExited(time.Minute, "its input closed")
	var full []int
	for range b.N {
		time.Sleep(2 * time.Second)
		full = append(full, rssKiB(b, d.cmd.Process.Pid))
	}
	rss := full[len(full)-1]
	mib := func(kib int) float64 { return float64(kib) / 1024 }
	b.ReportMetric(mib(idle), "rss-idle-MiB")
	b.ReportMetric(mib(started), "rss-10-bottles-MiB")
	b.ReportMetric(mib(rss), "rss-10-full-scrollbacks-MiB")
	b.ReportMetric(mib(rss-started)/bottles, "MiB-per-scrollback")
	b.ReportMetric(float64(rss)/float64(idle), "rss-ratio")
	b.ReportMetric(0, "ns/op")
}
