package dockerbottle_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerbottle"
)

// runIn is Bottle.Run with a minute to finish; it fails t on an error.
func runIn(t *testing.T, bt backend.Bottle, in io.Reader, argv ...string) (stdout string, code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	code, stderr, err := bt.Run(ctx, argv, in, &out)
	if err != nil {
		t.Fatalf("Run %q: %v (stderr %q)", argv, err, stderr)
	}
	return out.String(), code, stderr
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestRunKeepsStdoutStderrAndStdinApart: what a caller of Run parses (a
// tar, a git bundle) is the process's stdout byte for byte, never mixed
// with its complaints, and what it feeds in arrives whole.
func TestRunKeepsStdoutStderrAndStdinApart(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			bt := startBottle(t, backend.StartSpec{Manifest: simpleManifest(t, rt), Agent: "sh"})

			t.Run("binary stdout, the hash of what was written on stderr", func(t *testing.T) {
				out, code, stderr := runIn(t, bt, nil, "sh", "-c", `head -c 3000000 /dev/urandom | tee /tmp/run.bin && sha256sum /tmp/run.bin >&2`)
				if code != 0 || len(out) != 3000000 {
					t.Fatalf("exit %d, %d bytes of stdout; want 0, 3000000 (stderr %q)", code, len(out), stderr)
				}
				if want := sha([]byte(out)) + "  /tmp/run.bin\n"; stderr != want {
					t.Errorf("stderr is %q, want the hash of stdout %q", stderr, want)
				}
				again, _, _ := runIn(t, bt, nil, "cat", "/tmp/run.bin")
				if again != out {
					t.Errorf("cat of the file the first run wrote differs from what it streamed (%d bytes)", len(again))
				}
			})

			t.Run("stdin reaches the process, then closes", func(t *testing.T) {
				in := make([]byte, 3<<20)
				if _, err := rand.Read(in); err != nil {
					t.Fatal(err)
				}
				// cat echoes while it reads: the input and the output flow
				// at once, and neither may stall the other.
				out, code, _ := runIn(t, bt, bytes.NewReader(in), "cat")
				if code != 0 || out != string(in) {
					t.Errorf("cat of 3 MiB of input: exit %d, %d bytes back, same: %v", code, len(out), out == string(in))
				}
				out, code, _ = runIn(t, bt, nil, "cat")
				if code != 0 || out != "" {
					t.Errorf("cat without input: exit %d, %q; want 0 and nothing", code, out)
				}
			})

			t.Run("exit code, user and folder", func(t *testing.T) {
				out, code, stderr := runIn(t, bt, nil, "sh", "-c", `echo "$(id -un) $(pwd)"; echo oops >&2; exit 7`)
				if want := "node /home/node/workspace\n"; code != 7 || out != want || stderr != "oops\n" {
					t.Errorf("got exit %d, stdout %q, stderr %q; want 7, %q, %q", code, out, stderr, want, "oops\n")
				}
			})

			t.Run("only the first 4 KiB of stderr", func(t *testing.T) {
				_, code, stderr := runIn(t, bt, nil, "sh", "-c", `head -c 100000 /dev/zero | tr '\0' e >&2; echo done`)
				if code != 0 || stderr != strings.Repeat("e", 4096) {
					t.Errorf("exit %d, %d bytes of stderr; want 0 and 4096 e's", code, len(stderr))
				}
			})

			t.Run("a file the agent just wrote", func(t *testing.T) {
				// The agent writes through its own exec; under gVisor the
				// Engine API's archive endpoint does not see such a file,
				// and Run, an exec through the sandbox, must.
				content := mustRun(t, bt, "sh", "-c", `head -c 4096 /dev/urandom | base64 | tee fresh.txt`)
				if _, _, err := engine.Client().CopyFromContainer(context.Background(), bt.Info().ContainerID, "/home/node/workspace/fresh.txt"); err != nil {
					t.Logf("the archive endpoint cannot read it: %v", err)
				}
				if out, code, _ := runIn(t, bt, nil, "cat", "fresh.txt"); code != 0 || out != content {
					t.Errorf("cat fresh.txt: exit %d, %d bytes; want the %d bytes the agent wrote", code, len(out), len(content))
				}
			})

			t.Run("empty argv", func(t *testing.T) {
				if _, _, err := bt.Run(context.Background(), nil, nil, io.Discard); !errors.Is(err, backend.ErrInvalid) {
					t.Errorf("Run with no argv: %v; want ErrInvalid", err)
				}
			})
		})
	}
}

// TestRunCancelKillsTheProcess: a caller that gives up (a client gone, a
// fetch cancelled) leaves nothing running in the bottle, and a caller
// whose writer fails is not left blocked either.
func TestRunCancelKillsTheProcess(t *testing.T) {
	needEngine(t)
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			bt := startBottle(t, backend.StartSpec{Manifest: simpleManifest(t, rt), Agent: "sh"})
			cases := []struct {
				name string
				// stop is given the run's cancel and returns its output's writer.
				stop func(cancel context.CancelFunc) io.Writer
				want error
			}{
				{"cancel", func(cancel context.CancelFunc) io.Writer { return &onWrite{f: cancel} }, context.Canceled},
				{"failing writer", func(context.CancelFunc) io.Writer { return failWriter{} }, errFailWriter},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					_, _, err := bt.Run(ctx, []string{"sh", "-c", `echo started; exec sleep 4321`}, nil, c.stop(cancel))
					if !errors.Is(err, c.want) {
						t.Fatalf("Run: %v; want %v", err, c.want)
					}
					waitGone(t, bt, "sleep 4321")
				})
			}
		})
	}
}

// waitGone waits until no process of the bottle has cmdline.
func waitGone(t *testing.T, bt *dockerbottle.Bottle, cmdline string) {
	t.Helper()
	// The pattern's brackets keep it from matching the shell that runs pgrep.
	pattern := "[" + cmdline[:1] + "]" + cmdline[1:]
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := run(t, bt, "pgrep", "-f", pattern)
		if code != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q still runs after the cancel: pids %s", cmdline, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// onWrite calls f at the first write.
type onWrite struct {
	once sync.Once
	f    func()
}

func (w *onWrite) Write(b []byte) (int, error) {
	w.once.Do(w.f)
	return len(b), nil
}

var errFailWriter = errors.New("the writer failed")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFailWriter }
