package session

import (
	"bytes"
	"testing"
)

func TestRingKeepsTheLatestBytesUpToItsCapacity(t *testing.T) {
	tests := []struct {
		name   string
		cap    int
		writes []string
		want   string
		start  int64
	}{
		{"empty", 8, nil, "", 0},
		{"under capacity", 8, []string{"abc", "de"}, "abcde", 0},
		{"exactly full", 4, []string{"ab", "cd"}, "abcd", 0},
		{"wraps once", 4, []string{"abc", "def"}, "cdef", 2},
		{"one write longer than the capacity", 4, []string{"abcdefghij"}, "ghij", 6},
		{"wraps many times", 3, []string{"ab", "cd", "ef", "gh", "i"}, "ghi", 6},
		{"no capacity keeps nothing", 0, []string{"abc"}, "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRing(tt.cap)
			var total int64
			for _, w := range tt.writes {
				r.write([]byte(w))
				total += int64(len(w))
			}
			if r.end != total {
				t.Fatalf("end = %d, want %d", r.end, total)
			}
			if r.start() != tt.start {
				t.Fatalf("start = %d, want %d", r.start(), tt.start)
			}
			got := make([]byte, 64)
			n := r.readAt(r.start(), got)
			if string(got[:n]) != tt.want {
				t.Fatalf("kept %q, want %q", got[:n], tt.want)
			}
		})
	}
}

func TestRingReadsAnyRangeOfWhatItKeeps(t *testing.T) {
	r := newRing(7)
	var all []byte
	for i := range 50 {
		b := []byte{byte('a' + i%26), byte('A' + i%26), byte('0' + i%10)}
		r.write(b)
		all = append(all, b...)
		for off := r.start(); off < r.end; off++ {
			for size := 1; size <= 8; size++ {
				p := make([]byte, size)
				n := r.readAt(off, p)
				want := all[off:min(off+int64(size), r.end)]
				if !bytes.Equal(p[:n], want) {
					t.Fatalf("after %d writes, readAt(%d, %d) = %q, want %q", i+1, off, size, p[:n], want)
				}
			}
		}
		if n := r.readAt(r.start()-1, make([]byte, 4)); r.start() > 0 && n != 0 {
			t.Fatalf("readAt before start copied %d bytes", n)
		}
	}
}

func TestAFullRingHoldsNoMoreThanItsCapacity(t *testing.T) {
	const capacity = 1 << 20
	r := newRing(capacity)
	chunk := make([]byte, 16<<10)
	for range 2 * capacity / len(chunk) {
		r.write(chunk)
	}
	if cap(r.buf) != capacity {
		t.Fatalf("a full ring of %d bytes holds an array of %d", capacity, cap(r.buf))
	}
}
