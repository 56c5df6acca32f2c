package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/bottle-dev/bottle/rpc"
)

const cpOutFiles, cpOutFileMB = 200, 1 // a 200 MB folder

// BenchmarkCpOut: bottle/cpOut of a 200 MB folder of 200 files, against
// `docker cp` of the same folder out of the same container, and against
// the Engine API's archive endpoint alone (CopyFromContainer, its tar
// read and dropped). Under runc only: under runsc the archive endpoint
// does not see what the agent wrote.
func BenchmarkCpOut(b *testing.B) {
	e := newEditor(b)
	started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(b, "runc")})
	folder := started.Workspace + "/big"
	ex := e.exec(started.Session, false, "bash", "-ec", fmt.Sprintf(
		"mkdir %s; for i in $(seq %d); do head -c %dM /dev/urandom > %s/f$i; done", folder, cpOutFiles, cpOutFileMB, folder))
	if exit := e.waitExit(ex); exit.Code != 0 {
		b.Fatalf("making the folder: %+v %s", exit, e.output(ex))
	}
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close()
	ctx := context.Background()

	var ours, dockerCp, endpoint []time.Duration
	for range b.N {
		dir := b.TempDir()

		t0 := time.Now()
		var res rpc.CpOutResult
		e.call(rpc.MethodCpOut, rpc.CpOutParams{Session: started.Session, ContainerPath: folder, HostPath: filepath.Join(dir, "ours")}, &res)
		ours = append(ours, time.Since(t0))
		if res.Bytes != cpOutFiles*cpOutFileMB<<20 {
			b.Fatalf("cpOut copied %d bytes", res.Bytes)
		}

		t0 = time.Now()
		if out, err := exec.Command("docker", "cp", started.ContainerID+":"+folder, filepath.Join(dir, "docker")).CombinedOutput(); err != nil {
			b.Fatalf("docker cp: %v %s", err, out)
		}
		dockerCp = append(dockerCp, time.Since(t0))

		t0 = time.Now()
		rc, _, err := api.CopyFromContainer(ctx, started.ContainerID, folder)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n < cpOutFiles*cpOutFileMB<<20 {
			b.Fatalf("archive endpoint: %d bytes, %v", n, err)
		}
		endpoint = append(endpoint, time.Since(t0))
		os.RemoveAll(dir)
	}
	mbps := func(d time.Duration) float64 { return float64(cpOutFiles*cpOutFileMB) / d.Seconds() }
	b.ReportMetric(mbps(median(ours)), "cpOut-MB/s")
	b.ReportMetric(mbps(median(dockerCp)), "docker-cp-MB/s")
	b.ReportMetric(mbps(median(endpoint)), "archive-endpoint-MB/s")
	b.ReportMetric(mbps(median(ours))/mbps(median(dockerCp)), "vs-docker-cp")
	b.ReportMetric(mbps(median(ours))/mbps(median(endpoint)), "vs-archive-endpoint")
	b.ReportMetric(0, "ns/op")
}

const fetchCommits = 1000

// BenchmarkFetch: bottle/fetch of 1000 commits (one small file each) into
// the host repository, against the same by hand: `git bundle create` in
// the bottle through `docker exec`, its output to a host file, then
// `git bundle verify` and `git fetch` on the host. Each round fetches into
// a host repository that has none of the commits yet.
func BenchmarkFetch(b *testing.B) {
	for _, rt := range benchRuntimes() {
		b.Run(rt, func(b *testing.B) {
			repo := hostRepo(b)
			base := strings.TrimSpace(hostGit(b, repo, "rev-parse", "HEAD"))
			e := newEditor(b)
			started := e.start(rpc.StartParams{Agent: "sh", Manifest: writeManifest(b, rt), Cwd: repo, CopyGit: true})
			ws := started.Workspace
			e.inBottle(started.Session, fmt.Sprintf(`cd %s
ref=$(git symbolic-ref HEAD)
for i in $(seq %d); do
	printf 'commit %%s\ncommitter agent <agent@bottle> %%d +0000\ndata 7\ncommit\n' "$ref" $((1700000000 + i))
	if [ $i = 1 ]; then printf 'from %%s^0\n' "$ref"; fi
	printf 'M 644 inline f%%d.txt\ndata <<EOF\n%%d\nEOF\n\n' $i $i
done | git fast-import --quiet
git reset -q --hard`, ws, fetchCommits))

			var ours, byHand []time.Duration
			for i := range b.N {
				forget(b, repo)
				t0 := time.Now()
				var f rpc.FetchResult
				e.call(rpc.MethodFetch, rpc.FetchParams{Session: started.Session, Branch: fmt.Sprintf("ours-%d", i)}, &f)
				ours = append(ours, time.Since(t0))
				if f.Commits != fetchCommits {
					b.Fatalf("fetch brought %d commits", f.Commits)
				}

				forget(b, repo)
				bundle := filepath.Join(b.TempDir(), "by-hand.bundle")
				t0 = time.Now()
				out, err := os.Create(bundle)
				if err != nil {
					b.Fatal(err)
				}
				cmd := exec.Command("docker", "exec", "-u", "node", "-w", ws, started.ContainerID, "git", "bundle", "create", "-q", "-", "HEAD", "^"+base)
				cmd.Stdout = out
				if err := cmd.Run(); err != nil {
					b.Fatalf("git bundle create in the bottle: %v", err)
				}
				out.Close()
				hostGit(b, repo, "bundle", "verify", "-q", bundle)
				hostGit(b, repo, "fetch", "-q", "--no-write-fetch-head", bundle, fmt.Sprintf("HEAD:refs/heads/by-hand-%d", i))
				byHand = append(byHand, time.Since(t0))
			}
			forget(b, repo)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(median(ours)), "fetch-ms")
			b.ReportMetric(ms(median(byHand)), "by-hand-ms")
			b.ReportMetric(float64(median(ours))/float64(median(byHand)), "fetch/by-hand")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// forget drops every branch but main and every bottle ref of the host
// repository, and prunes their objects, so that the next fetch brings all
// of them again.
func forget(b *testing.B, repo string) {
	b.Helper()
	refs := strings.Fields(hostGit(b, repo, "for-each-ref", "--format=%(refname)", "refs/heads/", "refs/bottle/"))
	for _, ref := range refs {
		if ref != "refs/heads/main" {
			hostGit(b, repo, "update-ref", "-d", ref)
		}
	}
	hostGit(b, repo, "reflog", "expire", "--expire=now", "--all")
	hostGit(b, repo, "gc", "-q", "--prune=now")
}
