package dockerbottle

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The machine lock only narrows a race, so whatever another party does to
// its file, a start neither hangs nor fails: it goes on without the lock.
func TestMachineLockIsNeverAReasonToWaitForAnother(t *testing.T) {
	lockFile := func(dir string) string {
		return filepath.Join(dir, "bottle-test-lock-"+strconv.Itoa(os.Geteuid())+".lock")
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, file string)
		want    bool
	}{
		{"takes a fresh file", func(*testing.T, string) {}, true},
		{"leaves a file others may open alone", func(t *testing.T, file string) {
			if err := os.WriteFile(file, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, 0o666); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"does not follow a link", func(t *testing.T, file string) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.WriteFile(target, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, file); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("TMPDIR", dir)
			tc.prepare(t, lockFile(dir))
			unlock := machineLock(context.Background(), "bottle-test-lock")
			if got := unlock != nil; got != tc.want {
				t.Fatalf("lock taken: %v, want %v", got, tc.want)
			}
			if unlock != nil {
				unlock()
			}
		})
	}
}

func TestMachineLockWaitsForItsHolderUntilTheContextEnds(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	unlock := machineLock(context.Background(), "bottle-test-lock")
	if unlock == nil {
		t.Fatal("the first lock was not taken")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if second := machineLock(ctx, "bottle-test-lock"); second != nil {
		second()
		t.Fatal("a second lock was taken while the first was held")
	}
	unlock()
	second := machineLock(context.Background(), "bottle-test-lock")
	if second == nil {
		t.Fatal("the lock was not taken after its release")
	}
	second()
}
