package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/rpc"
)

// The upstream of these tests: dockerbottle's netprobe, answering
// "netprobe: METHOD PATH" over HTTP and HTTPS, as a FROM scratch image
// that each test builds and removes. It runs on the bottle's egress
// network under the names the tests give it: no traffic leaves the
// machine.
const upstreamTag = "bottle-test/approval-upstream:latest"

func dockerClient(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// buildUpstream builds the upstream image and removes it when t ends,
// after the bottles (and so the containers) of t's subtests are gone.
func buildUpstream(t *testing.T) {
	t.Helper()
	cli := dockerClient(t)
	bin := filepath.Join(t.TempDir(), "netprobe")
	gb := exec.Command("go", "build", "-o", bin, "github.com/bottle-dev/bottle/dockerbottle/testdata/netprobe")
	gb.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("building netprobe: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY netprobe /netprobe\nENTRYPOINT [\"/netprobe\"]\nCMD [\"serve\"]\n"),
		"netprobe":   data,
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body))})
		tw.Write(body)
	}
	tw.Close()
	ctx := context.Background()
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{upstreamTag}, NetworkMode: "none", Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("building the upstream image: %v", err)
	}
	defer resp.Body.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil); err != nil {
		t.Fatalf("building the upstream image: %v", err)
	}
	t.Cleanup(func() {
		if _, err := cli.ImageRemove(context.Background(), upstreamTag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Errorf("removing the upstream image: %v", err)
		}
	})
}

// startUpstream runs netprobe on the session's upstream network
// (upstreamNetwork) under names, labelled with the session so that
// bottle/close removes it.
func startUpstream(t *testing.T, session string, names ...string) {
	t.Helper()
	cli := dockerClient(t)
	netName := upstreamNetwork(t, session)
	ctx := context.Background()
	resp, err := cli.ContainerCreate(ctx, &container.Config{Image: upstreamTag, Labels: map[string]string{dockerbottle.LabelSession: session}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: names}}}, nil, "")
	if err != nil {
		t.Fatalf("creating the upstream: %v", err)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true}) })
	if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting the upstream: %v", err)
	}
}

// approvalManifest: agent sh on the base image, whose allowlist names none
// of the upstream's names; blocked.test is on the blocklist. The upstream
// lives on a private subnet, so its names are trusted (the SSRF guard
// would refuse them otherwise: trust allows nothing by itself).
func approvalManifest(t *testing.T, runtime, askTimeout string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bottle.yaml")
	y := fmt.Sprintf(`agents:
  sh: {bottle: b, command: [bash]}
bottles:
  b:
    image: "bottle/base:bookworm"
    runtime: %s
    egress:
      allow: [x.test]
      block: [blocked.test]
      trusted: [a.test, b.test, c.test, d.test, e.test, blocked.test]
      ask_timeout: %s
`, runtime, askTimeout)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newApprover starts bottle-rpc as an editor that answers approvals.
func newApprover(t testing.TB) *editor {
	t.Helper()
	e := startServer(t)
	var res rpc.InitializeResult
	e.call(rpc.MethodInitialize, rpc.InitializeParams{
		ClientInfo:   &rpc.ClientInfo{Name: "fake editor"},
		Capabilities: &rpc.ClientCapabilities{EgressApproval: true},
	}, &res)
	if err := e.conn.Notify(context.Background(), rpc.MethodInitialized, struct{}{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// curl runs curl in the bottle and returns its output (with -w, the
// status) once it exits, and how long it took.
func (e *editor) curl(session string, args ...string) (string, time.Duration) {
	e.t.Helper()
	start := time.Now()
	id := e.exec(session, false, append([]string{"curl", "-sS", "-k", "--max-time", "60"}, args...)...)
	e.waitExit(id)
	return e.output(id), time.Since(start)
}

// status is curl's way to print only the HTTP status of url.
func status(url string) []string { return []string{"-o", "/dev/null", "-w", "%{http_code}", url} }

// waitAsked waits for the n-th question (from 1) and returns it.
func (e *editor) waitAsked(n int) approval {
	e.t.Helper()
	var a approval
	e.waitUntil(fmt.Sprintf("question #%d", n), time.Minute, func() bool {
		if len(e.asked) < n {
			return false
		}
		a = e.asked[n-1]
		return true
	})
	return a
}

func (e *editor) questions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.asked)
}

// sawEgress reports whether a bottle/egress record matched.
func (e *editor) sawEgress(match func(rpc.EgressRecord) bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.egress, func(p rpc.EgressParams) bool { return match(p.Record) })
}

func (e *editor) allowlist(session string) []string {
	e.t.Helper()
	var list rpc.ListResult
	e.call(rpc.MethodList, rpc.ListParams{}, &list)
	for _, s := range list.Sessions {
		if s.Session == session {
			return s.Allow
		}
	}
	e.t.Fatalf("session %s not listed", session)
	return nil
}

// From inside a bottle, under runc and runsc: a connection to a host off
// the list is held until the editor answers; allowSession lets it through
// and a second one is not asked about; deny and no answer in time give
// 403; a blocklisted host and a request carrying a secret are refused
// without a question.
func TestApprovalsFromTheEditor(t *testing.T) {
	buildUpstream(t)
	for _, rt := range []string{"runc", "runsc"} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			e := newApprover(t)
			started := e.start(rpc.StartParams{Agent: "sh", Manifest: approvalManifest(t, rt, "3s")})
			sess := started.Session
			startUpstream(t, sess, "a.test", "b.test", "c.test", "e.test", "blocked.test")

			t.Run("allowSession lets the held connection through", func(t *testing.T) {
				id := e.exec(sess, false, "curl", "-sS", "-k", "--max-time", "60", "https://a.test/first")
				q := e.waitAsked(1)
				if want := (rpc.EgressApprovalParams{Session: sess, Method: "CONNECT", Host: "a.test", Port: 443}); q.params != want {
					t.Errorf("question = %+v, want %+v", q.params, want)
				}
				// The connection waits for the answer.
				time.Sleep(500 * time.Millisecond)
				e.mu.Lock()
				_, exited := e.exits[id]
				e.mu.Unlock()
				if exited {
					t.Fatalf("curl ended before the answer: %q", e.output(id))
				}
				if err := q.reply(context.Background(), rpc.EgressApprovalResult{Decision: rpc.ApprovalAllowSession}, nil); err != nil {
					t.Fatal(err)
				}
				if ex := e.waitExit(id); ex.Code != 0 || e.output(id) != "netprobe: GET /first\n" {
					t.Fatalf("curl exited %d with %q, want the upstream's answer", ex.Code, e.output(id))
				}
				if got := e.allowlist(sess); !slices.Equal(got, []string{"x.test", "a.test:443"}) {
					t.Errorf("allowlist = %q, want a.test:443 added", got)
				}
				if !e.sawEgress(func(r rpc.EgressRecord) bool { return r.Event == "policy" && r.Client == "approval" }) {
					t.Error("no policy record naming the approval")
				}
			})
			t.Run("a second connection is not asked about", func(t *testing.T) {
				if out, _ := e.curl(sess, "https://a.test/second"); out != "netprobe: GET /second\n" {
					t.Errorf("curl: %q", out)
				}
				if n := e.questions(); n != 1 {
					t.Errorf("%d questions, want still 1", n)
				}
			})
			t.Run("deny gives 403", func(t *testing.T) {
				n := e.questions()
				done := make(chan string, 1)
				go func() {
					out, _ := e.curl(sess, status("http://b.test/")...)
					done <- out
				}()
				q := e.waitAsked(n + 1)
				q.reply(context.Background(), rpc.EgressApprovalResult{Decision: rpc.ApprovalDeny}, nil)
				if out := <-done; out != "403" {
					t.Errorf("status %q, want 403", out)
				}
			})
			t.Run("no answer in time gives 403", func(t *testing.T) {
				n := e.questions()
				out, took := e.curl(sess, status("http://c.test/")...)
				if out != "403" {
					t.Errorf("status %q, want 403", out)
				}
				if e.questions() != n+1 {
					t.Errorf("the editor was not asked")
				}
				if took < 3*time.Second {
					t.Errorf("refused after %v, before the 3 s ask timeout", took)
				}
				// The late answer changes nothing, and the server goes on.
				e.waitAsked(n+1).reply(context.Background(), rpc.EgressApprovalResult{Decision: rpc.ApprovalAllowSession}, nil)
				if got := e.allowlist(sess); slices.Contains(got, "c.test:80") {
					t.Errorf("a late answer changed the allowlist: %q", got)
				}
			})
			t.Run("blocklist and DLP are never asked about", func(t *testing.T) {
				n := e.questions()
				if out, took := e.curl(sess, status("http://blocked.test/")...); out != "403" || took > 2500*time.Millisecond {
					t.Errorf("blocked host: status %q after %v, want 403 at once", out, took)
				}
				token := "ghp_" + strings.Repeat("a1B2", 9)
				if out, took := e.curl(sess, status("http://e.test/?t="+token)...); out != "403" || took > 2500*time.Millisecond {
					t.Errorf("DLP: status %q after %v, want 403 at once", out, took)
				}
				if m := e.questions(); m != n {
					t.Errorf("%d questions asked about refusals that are not default-deny", m-n)
				}
				if e.sawEgress(func(r rpc.EgressRecord) bool {
					return r.Event == "ask" && (r.Host == "blocked.test" || r.Host == "e.test")
				}) {
					t.Error("the proxy asked about the blocked host or the DLP hit")
				}
			})
		})
	}
}

// An editor without capabilities.egressApproval is never asked: a host off
// the list is refused at once. bottle/allow opens it, bottle/disallow
// closes it again for new connections.
func TestAllowAndDisallowFromAnEditorThatIsNotAsked(t *testing.T) {
	buildUpstream(t)
	for _, rt := range []string{"runc", "runsc"} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			e := newEditor(t)
			started := e.start(rpc.StartParams{Agent: "sh", Manifest: approvalManifest(t, rt, "30s")})
			sess := started.Session
			startUpstream(t, sess, "d.test")

			if out, took := e.curl(sess, status("http://d.test/")...); out != "403" || took > 10*time.Second {
				t.Errorf("status %q after %v, want 403 at once (the ask timeout is 30 s)", out, took)
			}
			var res rpc.AllowlistResult
			e.call(rpc.MethodAllow, rpc.AllowParams{Session: sess, Entries: []string{"d.test"}}, &res)
			if !slices.Equal(res.Allow, []string{"x.test", "d.test"}) {
				t.Errorf("allow = %q", res.Allow)
			}
			if out, _ := e.curl(sess, "http://d.test/open"); out != "netprobe: GET /open\n" {
				t.Errorf("after bottle/allow: %q", out)
			}
			e.call(rpc.MethodDisallow, rpc.DisallowParams{Session: sess, Entries: []string{"d.test"}}, &res)
			if out, _ := e.curl(sess, status("http://d.test/")...); out != "403" {
				t.Errorf("after bottle/disallow: status %q, want 403", out)
			}
			if !e.sawEgress(func(r rpc.EgressRecord) bool {
				return r.Event == "policy" && r.Client == "fake editor" && r.Change == "allow -d.test"
			}) {
				t.Error("no policy record of the disallow naming the editor")
			}
			err := e.try(rpc.MethodAllow, rpc.AllowParams{Session: sess, Entries: []string{"https://d.test/x"}}, &res)
			if werr := wantCode(t, err, -32602); !strings.Contains(werr.Message, "https://d.test/x") {
				t.Errorf("message %q does not name the entry", werr.Message)
			}
			if n := e.questions(); n != 0 {
				t.Errorf("a client without the capability was asked %d questions", n)
			}
		})
	}
}
