package dockerbottle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/bottle-dev/bottle/dockerbottle"
)

// BenchmarkWarmStartAgainstSeedCLI measures a warm start to ready (a
// bottle taken from the pool, its prompt provisioned, its proxy
// configured, its container renamed) next to the seed's docker CLI
// sequence for the same bottle, in the same run, and the idle cost of one
// pooled bottle: the memory its two containers use (the engine's stats,
// page cache left out) and the processes they run.
//
//	go test -run '^$' -bench WarmStart -benchtime 10x ./dockerbottle/
func BenchmarkWarmStartAgainstSeedCLI(b *testing.B) {
	needEngine(b)
	for _, rt := range runtimes {
		b.Run(rt, func(b *testing.B) {
			spec := poolManifest(b, rt, 1)
			prompt := filepath.Join(b.TempDir(), "prompt.txt")
			os.WriteFile(prompt, []byte("be careful"), 0o644)
			ctx := context.Background()
			b.Cleanup(func() { engine.DrainPool(ctx) })
			ready := func() {
				for {
					_, changed := engine.PoolReady()
					p, err := engine.Plan(ctx, spec)
					if err != nil {
						b.Fatal(err)
					}
					if p.Warm {
						return
					}
					select {
					case <-changed:
					case <-time.After(3 * time.Minute):
						b.Fatal("no bottle made ahead of time within 3 minutes")
					}
				}
			}
			ready()
			mem, pids := idleCost(b)
			var seed, warm []time.Duration
			b.ResetTimer()
			for i := range b.N {
				time.Sleep(time.Second)
				s, _, err := seedSequence(ctx, rt, prompt, i)
				if err != nil {
					b.Fatal(err)
				}
				seed = append(seed, s)
				ready() // not timed: the pool refills between starts
				time.Sleep(time.Second)
				t0 := time.Now()
				bt, err := engine.Start(ctx, spec, nil)
				if err != nil {
					b.Fatal(err)
				}
				warm = append(warm, time.Since(t0))
				if !bt.Info().Warm {
					b.Fatal("the start was cold")
				}
				if err := bt.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(median(warm)), "warm-start-ms")
			b.ReportMetric(ms(median(seed)), "seed-start-ms")
			b.ReportMetric(ms(median(warm))/ms(median(seed)), "warm-start-ratio")
			b.ReportMetric(mem/(1<<20), "pooled-idle-MiB")
			b.ReportMetric(pids, "pooled-idle-procs")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// idleCost is the memory (bytes, without page cache) and the processes of
// the pool's bottles' containers, summed.
func idleCost(b *testing.B) (mem, pids float64) {
	b.Helper()
	cli := engine.Client()
	for _, bt := range engine.PooledForTest() {
		cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true})
		if err != nil {
			b.Fatal(err)
		}
		session := inspectB(b, bt.AgentID()).Config.Labels[dockerbottle.LabelSession]
		for _, c := range cs {
			if c.Labels[dockerbottle.LabelSession] != session {
				continue
			}
			st, err := cli.ContainerStatsOneShot(context.Background(), c.ID)
			if err != nil {
				b.Fatal(err)
			}
			var s container.StatsResponse
			err = json.NewDecoder(st.Body).Decode(&s)
			st.Body.Close()
			if err != nil {
				b.Fatal(err)
			}
			mem += float64(s.MemoryStats.Usage - s.MemoryStats.Stats["cache"])
			pids += float64(s.PidsStats.Current)
			b.Logf("pooled %s %s: %.1f MiB, %d processes", c.Labels[dockerbottle.LabelRole], c.Image, float64(s.MemoryStats.Usage-s.MemoryStats.Stats["cache"])/(1<<20), s.PidsStats.Current)
		}
	}
	return mem, pids
}

func inspectB(b *testing.B, id string) container.InspectResponse {
	b.Helper()
	c, err := engine.Client().ContainerInspect(context.Background(), id)
	if err != nil {
		b.Fatal(fmt.Errorf("inspecting %s: %w", id, err))
	}
	return c
}
