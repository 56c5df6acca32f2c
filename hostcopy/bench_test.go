package hostcopy

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchTar writes a 200 MB folder (20 folders of 100 files of 100 KB) and
// GNU tar's archive of it, once per benchmark.
func benchTar(b *testing.B) (archive string, size int64) {
	b.Helper()
	src := b.TempDir()
	body := make([]byte, 100_000)
	for d := range 20 {
		dir := filepath.Join(src, "proj", fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			rand.Read(body)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), body, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	archive = filepath.Join(b.TempDir(), "proj.tar")
	if out, err := exec.Command("tar", "-C", src, "-cf", archive, "proj").CombinedOutput(); err != nil {
		b.Fatalf("tar: %v: %s", err, out)
	}
	return archive, 20 * 100 * 100_000
}

// BenchmarkExtract extracts the 200 MB folder's archive read from a file;
// BenchmarkTarX is plain `tar -xf` of the same archive, to compare with.
func BenchmarkExtract(b *testing.B) {
	archive, size := benchTar(b)
	dst := b.TempDir()
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		f, err := os.Open(archive)
		if err != nil {
			b.Fatal(err)
		}
		hostPath := filepath.Join(dst, fmt.Sprint(i))
		_, err = Extract(context.Background(), f, hostPath, Options{})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(hostPath); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkTarX(b *testing.B) {
	archive, size := benchTar(b)
	dst := b.TempDir()
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		hostPath := filepath.Join(dst, fmt.Sprint(i))
		if err := os.Mkdir(hostPath, 0o755); err != nil {
			b.Fatal(err)
		}
		if out, err := exec.Command("tar", "-C", hostPath, "-xf", archive).CombinedOutput(); err != nil {
			b.Fatalf("tar: %v: %s", err, out)
		}
		b.StopTimer()
		if err := os.RemoveAll(hostPath); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
