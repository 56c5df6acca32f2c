// Package backendtest is the behaviour every backend.Backend owes, as a
// test suite that runs against any of them: start (progress in order, Info
// filled), exec with and without a terminal, Run, copy in and out, egress
// through the bottle's proxy only and its live policy, close, and nothing
// left behind after a close or a failed start. It knows a bottle only
// through package backend; what only the backend can do (start an upstream
// its proxy may reach, list what it left on its engine) comes from a
// Harness. A second backend is written against it.
package backendtest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/internal/lockedbuf"
	"github.com/bottle-dev/bottle/internal/testwait"
	"github.com/bottle-dev/bottle/manifest"
)

// Harness is what the suite needs of a backend beyond backend.Backend.
type Harness struct {
	// Backend is the backend under test.
	Backend backend.Backend
	// Image is an agent image the backend can start: bash, coreutils,
	// tar, curl, getent and procps, and a user other than root as the
	// agent user, who owns the workspace.
	Image string
	// Runtime is the manifest's runtime for every bottle: auto, runsc or
	// runc.
	Runtime string
	// Upstream starts, for bottle b, a server that b's egress proxy
	// reaches as name: HTTP on port 80 answering every GET with 200. Only
	// the proxy may reach it: the suite checks that the agent cannot, at
	// the address Upstream returns. It must be gone once b is closed: the
	// suite checks Leftovers after Close.
	Upstream func(t *testing.T, b backend.Bottle, name string) (addr string)
	// Leftovers lists what the backend still holds on its engine for the
	// session (containers, networks, images, pods...), one a string.
	Leftovers func(ctx context.Context, session string) ([]string, error)
}

// Upstream names the suite gives the harness. The manifest trusts them
// (a test's upstream has a private address, which the proxy's SSRF guard
// refuses otherwise) and allows only allowedHost.
const (
	allowedHost = "allowed.test"
	refusedHost = "refused.test"
	laterHost   = "later.test"
)

// agent is the agent every bottle of the suite runs.
const agent = "sh"

// wait bounds every wait of the suite: what it waits for happens in
// seconds, and the bound only keeps a broken backend from hanging the run.
const wait = 2 * time.Minute

// Run runs the suite against h. Its subtests share one bottle and run in
// order; the bottle is closed when Run returns.
func Run(t *testing.T, h Harness) {
	s := &suite{h: h}
	s.checkHarness(t)
	var b backend.Bottle
	if !t.Run("Start", func(t *testing.T) { b = s.start(t) }) || b == nil {
		return
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("closing the bottle: %v", err)
		}
	})
	t.Run("Exec", func(t *testing.T) { s.exec(t, b) })
	t.Run("ExecTTY", func(t *testing.T) { s.execTTY(t, b) })
	t.Run("Kill", func(t *testing.T) { s.kill(t, b) })
	t.Run("Run", func(t *testing.T) { s.run(t, b) })
	t.Run("CopyIn", func(t *testing.T) { s.copyIn(t, b) })
	t.Run("Archive", func(t *testing.T) { s.archive(t, b) })
	t.Run("Egress", func(t *testing.T) { s.egress(t, b) })
	t.Run("SetPolicy", func(t *testing.T) { s.setPolicy(t, b) })
	t.Run("Close", func(t *testing.T) { s.close(t, b) })
	t.Run("StartFailure", s.startFailure)
}

type suite struct {
	h Harness

	// steps are the names of the steps the first start reported; the
	// start failure tests cancel at each.
	steps []string
	audit audit
	// steps after Start returned are a backend's bug.
	mu           sync.Mutex
	started      bool
	stepsAfterUp []string
}

func (s *suite) checkHarness(t *testing.T) {
	t.Helper()
	if s.h.Backend == nil || s.h.Image == "" || s.h.Runtime == "" || s.h.Upstream == nil || s.h.Leftovers == nil {
		t.Fatalf("backendtest.Harness needs Backend, Image, Runtime, Upstream and Leftovers; got %+v", s.h)
	}
}

// manifest is one agent, bash, on the harness's image, allowing only
// allowedHost.
func (s *suite) manifest(t *testing.T, image string) *manifest.Manifest {
	t.Helper()
	y := fmt.Sprintf(`
agents:
  %s: {bottle: conformance, command: [bash]}
bottles:
  conformance:
    image: %q
    runtime: %s
    limits: {memory: 512m, pids: 256}
    egress:
      allow: [%s]
      trusted: [%s, %s, %s]
      ask: false
`, agent, image, s.h.Runtime, allowedHost, allowedHost, refusedHost, laterHost)
	dir := t.TempDir()
	m, err := manifest.Parse(filepath.Join(dir, "bottle.yaml"), []byte(y), dir)
	if err != nil {
		t.Fatalf("the suite's manifest: %v", err)
	}
	return m
}

// session is a session name of the suite's own, so that Leftovers can be
// asked about a start that failed before it said its session.
func session(what string) string {
	return fmt.Sprintf("conf%s%d", what, time.Now().UnixNano()%1e9)
}

func (s *suite) start(t *testing.T) backend.Bottle {
	m := s.manifest(t, s.h.Image)
	sess := session("main")
	var steps []backend.Step
	progress := func(st backend.Step) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.started {
			s.stepsAfterUp = append(s.stepsAfterUp, st.Name)
			return
		}
		steps = append(steps, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := s.h.Backend.Start(ctx, backend.StartSpec{Manifest: m, Agent: agent, Session: sess, OnEgress: s.audit.add}, progress)
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	if err != nil {
		t.Fatalf("start: %v", err)
	}

	checkSteps(t, steps)
	for _, st := range steps {
		s.steps = append(s.steps, st.Name)
	}

	info := b.Info()
	_, mb, err := m.Agent(agent)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case info.Session != sess:
		t.Errorf("Info.Session = %q, want the spec's %q", info.Session, sess)
	case info.Agent != agent:
		t.Errorf("Info.Agent = %q, want %q", info.Agent, agent)
	case info.Container == "":
		t.Error("Info.Container is empty: a client shows it")
	case info.Runtime == "" || info.RuntimeLabel == "":
		t.Errorf("Info.Runtime %q, RuntimeLabel %q: both must be set", info.Runtime, info.RuntimeLabel)
	case s.h.Runtime != "auto" && info.Runtime != s.h.Runtime:
		t.Errorf("Info.Runtime = %q, the manifest asks for %q", info.Runtime, s.h.Runtime)
	case info.Image == "":
		t.Error("Info.Image is empty")
	case !path.IsAbs(info.Home) || !path.IsAbs(info.Workspace):
		t.Errorf("Info.Home %q and Info.Workspace %q must be absolute paths in the bottle", info.Home, info.Workspace)
	case info.ProxyAddr == "":
		t.Error("Info.ProxyAddr is empty")
	case !info.LivePolicy:
		t.Error("Info.LivePolicy is false for a bottle with the built-in proxy")
	case !slices.Equal(info.Allow, mb.Egress.Allow) || len(info.Block) != 0:
		t.Errorf("Info.Allow %v, Block %v; want the manifest's %v and none", info.Allow, info.Block, mb.Egress.Allow)
	case info.AskTimeout != 0:
		t.Errorf("Info.AskTimeout = %v for a bottle that never asks", info.AskTimeout)
	}
	return b
}

// checkSteps: at least one step, each named and said, begun in order
// (Done rising, below a Total that stays the same), no name twice.
func checkSteps(t *testing.T, steps []backend.Step) {
	t.Helper()
	if len(steps) == 0 {
		t.Fatal("start reported no progress step")
	}
	seen := map[string]bool{}
	for i, st := range steps {
		switch {
		case st.Name == "" || st.Message == "":
			t.Errorf("step %d (%+v) has no name or no message", i, st)
		case seen[st.Name]:
			t.Errorf("step %q reported twice: %+v", st.Name, steps)
		case st.Total != steps[0].Total || st.Done < 0 || st.Done >= st.Total:
			t.Errorf("step %d (%+v): Done must be below Total, and Total the same on every step", i, st)
		case i > 0 && st.Done <= steps[i-1].Done:
			t.Errorf("step %d (%+v) does not come after %+v", i, st, steps[i-1])
		}
		seen[st.Name] = true
	}
}

func (s *suite) exec(t *testing.T, b backend.Bottle) {
	info := b.Info()
	tests := []struct {
		name string
		spec backend.ExecSpec
		in   string
		want string
		code int
	}{
		{"runs in the workspace", backend.ExecSpec{Argv: []string{"pwd"}}, "", info.Workspace + "\n", 0},
		{"exit code", backend.ExecSpec{Argv: []string{"sh", "-c", "exit 7"}}, "", "", 7},
		{"stdin to the end", backend.ExecSpec{Argv: []string{"cat"}}, "line one\nline two", "line one\nline two", 0},
		{"env of the exec", backend.ExecSpec{Argv: []string{"sh", "-c", `printf %s "$CONFORMANCE"`}, Env: map[string]string{"CONFORMANCE": "per exec"}}, "", "per exec", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := execAll(t, b, tt.spec, tt.in)
			if out != tt.want || code != tt.code {
				t.Errorf("%q: output %q, exit %d; want %q, exit %d", tt.spec.Argv, out, code, tt.want, tt.code)
			}
		})
	}
	// Both streams come out, in an order no backend need keep: Docker
	// multiplexes them on one connection, Kubernetes has a stream each.
	t.Run("stdout and stderr merged", func(t *testing.T) {
		out, code := execAll(t, b, backend.ExecSpec{Argv: []string{"sh", "-c", "echo out; echo err >&2"}}, "")
		lines := strings.Fields(out)
		slices.Sort(lines)
		if !slices.Equal(lines, []string{"err", "out"}) || code != 0 {
			t.Errorf("output %q, exit %d; want out and err, exit 0", out, code)
		}
	})
	t.Run("as the agent user, who owns the workspace", func(t *testing.T) {
		out, _ := execAll(t, b, backend.ExecSpec{Argv: []string{"sh", "-c", `echo "$(id -u) $(id -un) $(stat -c %U .)"`}}, "")
		var uid, user, owner string
		if _, err := fmt.Sscan(out, &uid, &user, &owner); err != nil || uid == "0" || user != owner {
			t.Errorf("uid, user, workspace owner = %q: want a user other than root who owns the workspace", out)
		}
	})
	t.Run("Argv", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		p, err := b.Exec(ctx, backend.ExecSpec{Argv: []string{"true"}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if got := p.Argv(); !slices.Equal(got, []string{"true"}) {
			t.Errorf("Argv() = %q, want [true]", got)
		}
		drain(t, p)
	})
}

// execAll runs spec, feeds it in, reads its output to the end and waits.
func execAll(t *testing.T, b backend.Bottle, spec backend.ExecSpec, in string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	p, err := b.Exec(ctx, spec)
	if err != nil {
		t.Fatalf("exec %q: %v", spec.Argv, err)
	}
	defer p.Close()
	if in != "" {
		if _, err := io.WriteString(p, in); err != nil {
			t.Fatalf("writing to %q: %v", spec.Argv, err)
		}
	}
	if err := p.CloseInput(); err != nil {
		t.Fatalf("closing the input of %q: %v", spec.Argv, err)
	}
	out, err := io.ReadAll(p)
	if err != nil {
		t.Fatalf("reading the output of %q: %v", spec.Argv, err)
	}
	code, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("waiting for %q: %v", spec.Argv, err)
	}
	return string(out), code
}

// mustExec is execAll of argv that wants exit code 0.
func mustExec(t *testing.T, b backend.Bottle, argv ...string) string {
	t.Helper()
	out, code := execAll(t, b, backend.ExecSpec{Argv: argv}, "")
	if code != 0 {
		t.Fatalf("%q exited %d: %s", argv, code, out)
	}
	return out
}

// drain reads p to its end and returns the exit code.
func drain(t *testing.T, p backend.Process) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := io.Copy(io.Discard, p); err != nil {
		t.Fatalf("reading the output of %q: %v", p.Argv(), err)
	}
	code, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("waiting for %q: %v", p.Argv(), err)
	}
	return code
}

// output follows a process's output into a buffer the test reads while
// it grows; done is closed at its end.
type output struct {
	buf  lockedbuf.Buffer
	done chan struct{}
	err  error
}

func follow(p backend.Process) *output {
	o := &output{done: make(chan struct{})}
	go func() {
		_, o.err = io.Copy(&o.buf, p)
		close(o.done)
	}()
	return o
}

// until waits until the output holds want.
func (o *output) until(t *testing.T, want string) {
	t.Helper()
	testwait.Until(t, fmt.Sprintf("output %q", want), wait, func() bool { return strings.Contains(o.buf.String(), want) })
}

// end waits for the output's end.
func (o *output) end(t *testing.T) {
	t.Helper()
	testwait.UntilChanged(t, "the end of the output", wait, func() (bool, <-chan struct{}) {
		select {
		case <-o.done:
			return true, nil
		default:
			return false, o.done
		}
	})
	if o.err != nil {
		t.Errorf("reading the output: %v", o.err)
	}
}

func (s *suite) execTTY(t *testing.T, b backend.Bottle) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	p, err := b.Exec(ctx, backend.ExecSpec{Argv: []string{"bash", "--norc", "--noprofile", "-i"}, Tty: true, Cols: 100, Rows: 30})
	if err != nil {
		t.Fatalf("tty exec: %v", err)
	}
	defer p.Close()
	out := follow(p)
	// What the test looks for is computed by the shell, never in the
	// echo of the line it was sent: seeing it means the shell ran it.
	io.WriteString(p, "[ -t 0 ] && echo tty$((1+1))yes; stty size; echo sum=$((40+2))\n")
	out.until(t, "sum=42")
	if got := out.buf.String(); !strings.Contains(got, "tty2yes") || !strings.Contains(got, "30 100") {
		t.Errorf("tty output %q: want a terminal of 30 rows and 100 columns", got)
	}
	if err := p.Resize(ctx, 120, 40); err != nil {
		t.Fatalf("resize: %v", err)
	}
	io.WriteString(p, "stty size; echo resized=$((1+1))\n")
	out.until(t, "resized=2")
	if got := out.buf.String(); !strings.Contains(got, "40 120") {
		t.Errorf("after resizing to 120x40: %q", got)
	}
	io.WriteString(p, "exit 3\n")
	out.end(t)
	if code, err := p.Wait(ctx); err != nil || code != 3 {
		t.Errorf("tty exec exit = %d (%v), want 3", code, err)
	}
}

func (s *suite) kill(t *testing.T, b backend.Bottle) {
	for i, tty := range []bool{false, true} {
		t.Run(fmt.Sprintf("tty=%v", tty), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			// Two sleeps of numbers of their own: one the shell started in
			// the background, one it waits for. Kill ends both.
			n := 600 + 10*i
			script := fmt.Sprintf("sleep %d & sleep %d & echo started; wait", n, n+1)
			p, err := b.Exec(ctx, backend.ExecSpec{Argv: []string{"sh", "-c", script}, Tty: tty, Cols: 80, Rows: 24})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			out := follow(p)
			out.until(t, "started")
			if err := p.Kill(ctx); err != nil {
				t.Fatalf("kill: %v", err)
			}
			out.end(t)
			if code, err := p.Wait(ctx); err == nil && code == 0 {
				t.Errorf("a killed process exited 0")
			}
			testwait.Until(t, "the killed process's children to end", wait, func() bool {
				ps := mustExec(t, b, "ps", "-eo", "args")
				return !strings.Contains(ps, fmt.Sprintf("sleep %d", n))
			})
		})
	}
}

func (s *suite) run(t *testing.T, b backend.Bottle) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out bytes.Buffer
	code, stderr, err := b.Run(ctx, []string{"sh", "-c", "cat; pwd; echo oops >&2; exit 4"}, strings.NewReader("input\n"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "input\n" + b.Info().Workspace + "\n"; code != 4 || out.String() != want || stderr != "oops\n" {
		t.Errorf("Run: exit %d, stdout %q, stderr %q; want 4, %q, %q", code, out.String(), stderr, want, "oops\n")
	}
	// No input: stdin is empty, not a wait.
	out.Reset()
	if code, _, err := b.Run(ctx, []string{"cat"}, nil, &out); err != nil || code != 0 || out.Len() != 0 {
		t.Errorf("Run of cat without input: exit %d, %v, output %q", code, err, out.String())
	}
}

func (s *suite) copyIn(t *testing.T, b backend.Bottle) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws := b.Info().Workspace
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	write("note.txt", "hello", 0o640)
	write("tree/sub/a.txt", "abc", 0o644)
	write("tree/run.sh", "#!/bin/sh\n", 0o755)

	if n, err := b.CopyIn(ctx, filepath.Join(dir, "note.txt"), ws+"/in/deeper/note.txt"); err != nil || n != 5 {
		t.Fatalf("copying a file: %d bytes, %v; want 5", n, err)
	}
	if n, err := b.CopyIn(ctx, filepath.Join(dir, "tree"), ws+"/in/tree"); err != nil || n != 13 {
		t.Fatalf("copying a folder: %d bytes, %v; want 13", n, err)
	}
	// What the bottle's own processes see, at once: the agent user owns
	// it, with the host's modes.
	user := strings.TrimSpace(mustExec(t, b, "id", "-un"))
	got := mustExec(t, b, "sh", "-c", "cd in && stat -c '%U %a %n' deeper deeper/note.txt tree tree/sub tree/sub/a.txt tree/run.sh && cat deeper/note.txt tree/sub/a.txt")
	want := strings.ReplaceAll(`U 755 deeper
U 640 deeper/note.txt
U 755 tree
U 755 tree/sub
U 644 tree/sub/a.txt
U 755 tree/run.sh
helloabc`, "U", user)
	if got != want {
		t.Errorf("the bottle sees:\n%s\nwant:\n%s", got, want)
	}

	for _, tt := range []struct {
		name            string
		host, container string
		field           string
	}{
		{"missing host path", filepath.Join(dir, "missing"), ws + "/x", "hostPath"},
		{"relative container path", filepath.Join(dir, "note.txt"), "relative/x", ""},
		{"a folder the agent user cannot write", filepath.Join(dir, "note.txt"), "/etc/conformance/note.txt", "containerPath"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.CopyIn(ctx, tt.host, tt.container)
			checkInvalid(t, err, tt.field)
		})
	}
}

// checkInvalid wants err to be ErrInvalid, and a FieldError of field
// unless field is empty; never the bottle's loss.
func checkInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var fe *backend.FieldError
	switch {
	case !errors.Is(err, backend.ErrInvalid):
		t.Errorf("got %v, want ErrInvalid", err)
	case errors.Is(err, backend.ErrBottleGone) || errors.Is(err, backend.ErrEngineUnavailable):
		t.Errorf("got %v: the request was wrong, the bottle is not lost", err)
	case field != "" && (!errors.As(err, &fe) || fe.Field != field):
		t.Errorf("got %v (%T), want a FieldError of %q", err, err, field)
	}
}

func (s *suite) archive(t *testing.T, b backend.Bottle) {
	ws := b.Info().Workspace
	mustExec(t, b, "sh", "-c", "mkdir -p out/sub && printf archived >out/a.txt && printf deep >out/sub/b.txt && ln -sf /etc/hostname out/link")
	tests := []struct {
		name string
		path string
		want []string // "name type [content or link target]"
	}{
		{"a file", ws + "/out/a.txt", []string{"a.txt file archived"}},
		{"a link, not followed", ws + "/out/link", []string{"link symlink /etc/hostname"}},
		{"a folder", ws + "/out", []string{"out dir", "out/a.txt file archived", "out/link symlink /etc/hostname", "out/sub dir", "out/sub/b.txt file deep"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			var buf bytes.Buffer
			if err := b.Archive(ctx, tt.path, &buf); err != nil {
				t.Fatalf("Archive(%s): %v", tt.path, err)
			}
			got := entries(t, &buf)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Archive(%s) holds %q, want %q", tt.path, got, tt.want)
			}
		})
	}
	t.Run("a missing path", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		err := b.Archive(ctx, ws+"/no/such/file", io.Discard)
		checkInvalid(t, err, "containerPath")
	})
}

// entries lists a tar's entries, sorted, as "name type [content|target]".
func entries(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		name := strings.TrimSuffix(path.Clean(h.Name), "/")
		switch h.Typeflag {
		case tar.TypeDir:
			out = append(out, name+" dir")
		case tar.TypeSymlink:
			out = append(out, name+" symlink "+h.Linkname)
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, name+" file "+string(data))
		default:
			out = append(out, fmt.Sprintf("%s type %c", name, h.Typeflag))
		}
	}
	slices.Sort(out)
	return out
}

// get fetches http://host/path from the agent, through whatever proxy its
// environment names, and returns the HTTP status curl saw ("000" when it
// got no answer).
func get(t *testing.T, b backend.Bottle, host, p string) string {
	t.Helper()
	out, _ := execAll(t, b, backend.ExecSpec{Argv: []string{"curl", "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}", "http://" + host + p}}, "")
	return strings.TrimSpace(out[max(0, len(out)-3):])
}

func (s *suite) egress(t *testing.T, b backend.Bottle) {
	sess := b.Info().Session
	allowedAddr := s.h.Upstream(t, b, allowedHost)
	s.h.Upstream(t, b, refusedHost)
	s.h.Upstream(t, b, laterHost)

	t.Run("an allowed name gets through", func(t *testing.T) {
		if code := get(t, b, allowedHost, "/conformance"); code != "200" {
			t.Errorf("GET http://%s/: status %s, want 200", allowedHost, code)
		}
		s.audit.wait(t, func(r egress.Record) bool {
			return r.Event == egress.EventDecision && r.Host == allowedHost && r.Decision == "allow" && r.Session == sess
		})
	})
	t.Run("a name not on the list is refused", func(t *testing.T) {
		if code := get(t, b, refusedHost, "/conformance"); code != "403" {
			t.Errorf("GET http://%s/: status %s, want the proxy's 403", refusedHost, code)
		}
		s.audit.wait(t, func(r egress.Record) bool {
			return r.Event == egress.EventDecision && r.Host == refusedHost && r.Decision == "deny" && r.Rule == "default-deny"
		})
	})
	t.Run("no way around the proxy", func(t *testing.T) {
		if out, code := execAll(t, b, backend.ExecSpec{Argv: []string{"getent", "hosts", allowedHost}}, ""); code == 0 {
			t.Errorf("%s resolves in the bottle: %q", allowedHost, out)
		}
		if allowedAddr == "" {
			return
		}
		out, code := execAll(t, b, backend.ExecSpec{Argv: []string{"curl", "-sS", "--noproxy", "*", "--max-time", "5", "http://" + allowedAddr + "/"}}, "")
		if code == 0 {
			t.Errorf("a direct connection to the upstream at %s got through: %q", allowedAddr, out)
		}
	})
}

func (s *suite) setPolicy(t *testing.T, b backend.Bottle) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.SetPolicy(ctx, []string{laterHost}, nil, "conformance"); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	s.audit.wait(t, func(r egress.Record) bool {
		return r.Event == egress.EventPolicy && r.Decision == "allow" && r.Client == "conformance"
	})
	if code := get(t, b, laterHost, "/now"); code != "200" {
		t.Errorf("after allowing %s: status %s, want 200", laterHost, code)
	}
	if code := get(t, b, allowedHost, "/now"); code != "403" {
		t.Errorf("after leaving %s off the list: status %s, want 403", allowedHost, code)
	}
	if err := b.SetPolicy(ctx, []string{laterHost}, []string{laterHost}, "conformance"); err != nil {
		t.Fatalf("SetPolicy with a block: %v", err)
	}
	if code := get(t, b, laterHost, "/blocked"); code != "403" {
		t.Errorf("after blocking %s: status %s, want 403", laterHost, code)
	}
	s.audit.wait(t, func(r egress.Record) bool {
		return r.Event == egress.EventDecision && r.Host == laterHost && r.Decision == "deny" && strings.HasPrefix(r.Rule, "block:")
	})
	// A backend may check entries itself (ErrInvalid) or leave it to the
	// proxy, which refuses the change in the audit.
	t.Run("a bad entry changes nothing", func(t *testing.T) {
		err := b.SetPolicy(ctx, []string{"not a host"}, nil, "conformance")
		if err != nil {
			checkInvalid(t, err, "")
		} else {
			s.audit.wait(t, func(r egress.Record) bool {
				return r.Event == egress.EventPolicy && r.Decision == "deny" && r.Client == "conformance"
			})
		}
		if code := get(t, b, laterHost, "/still"); code != "403" {
			t.Errorf("after a refused change: status %s, want the block's 403", code)
		}
	})
}

func (s *suite) close(t *testing.T, b backend.Bottle) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sess := b.Info().Session
	if err := b.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	s.noLeftovers(t, sess)
	if err := b.Close(ctx); err != nil {
		t.Errorf("a second close: %v", err)
	}
	if _, err := b.Exec(ctx, backend.ExecSpec{Argv: []string{"true"}}); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("exec after close: %v, want ErrClosed", err)
	}
	if _, _, err := b.Run(ctx, []string{"true"}, nil, io.Discard); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Run after close: %v, want ErrClosed", err)
	}
	if err := b.Archive(ctx, b.Info().Workspace, io.Discard); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Archive after close: %v, want ErrClosed", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stepsAfterUp) > 0 {
		t.Errorf("progress steps %q came after Start returned", s.stepsAfterUp)
	}
}

func (s *suite) noLeftovers(t *testing.T, sess string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	left, err := s.h.Leftovers(ctx, sess)
	if err != nil {
		t.Fatalf("listing what bottle %s left: %v", sess, err)
	}
	if len(left) > 0 {
		t.Errorf("bottle %s left %q behind", sess, left)
	}
}

// startFailure: a start that fails, wherever it fails, removes all it
// made.
func (s *suite) startFailure(t *testing.T) {
	t.Run("missing image", func(t *testing.T) {
		t.Parallel()
		const image = "bottle-conformance/no-such-image:1"
		sess := session("img")
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		b, err := s.h.Backend.Start(ctx, backend.StartSpec{Manifest: s.manifest(t, image), Agent: agent, Session: sess}, nil)
		if err == nil {
			b.Close(ctx)
		}
		if !errors.Is(err, backend.ErrImage) || !strings.Contains(err.Error(), image) {
			t.Errorf("start on a missing image: %v, want ErrImage naming it", err)
		}
		s.noLeftovers(t, sess)
	})
	t.Run("unknown agent", func(t *testing.T) {
		t.Parallel()
		sess := session("agent")
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		b, err := s.h.Backend.Start(ctx, backend.StartSpec{Manifest: s.manifest(t, s.h.Image), Agent: "no-such-agent", Session: sess}, nil)
		if err == nil {
			b.Close(ctx)
		}
		if !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("start of an unknown agent: %v, want ErrInvalid", err)
		}
		s.noLeftovers(t, sess)
	})
	// Cancelling at each step stands for any failure there: what the
	// start made by then must go.
	for i, step := range s.steps {
		t.Run("cancelled at "+step, func(t *testing.T) {
			t.Parallel()
			sess := session(fmt.Sprintf("cancel%d", i))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b, err := s.h.Backend.Start(ctx, backend.StartSpec{Manifest: s.manifest(t, s.h.Image), Agent: agent, Session: sess}, func(st backend.Step) {
				if st.Name == step {
					cancel()
				}
			})
			if err == nil {
				b.Close(context.Background())
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("start cancelled at %s: %v, want context.Canceled", step, err)
			}
			s.noLeftovers(t, sess)
		})
	}
}

// audit keeps a bottle's egress records as its OnEgress hands them over.
type audit struct {
	mu      sync.Mutex
	recs    []egress.Record
	changed chan struct{} // closed at the next record
}

func (a *audit) add(r egress.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
}

// wait waits for a record that matches: the proxy writes it around the
// time the agent gets its answer, not necessarily before.
func (a *audit) wait(t *testing.T, match func(egress.Record) bool) {
	t.Helper()
	testwait.UntilChanged(t, "an egress record", wait, func() (bool, <-chan struct{}) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if slices.ContainsFunc(a.recs, match) {
			return true, nil
		}
		if a.changed == nil {
			a.changed = make(chan struct{})
		}
		return false, a.changed
	})
}
