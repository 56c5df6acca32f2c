package session

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// The gate releases everything but the last tar record while the stream
// runs, all of it at a clean end, and none of the tail after an error.
func TestTailGateHoldsTheLastRecordUntilTheEnd(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes
	failed := errors.New("tar exited with 2")
	tests := []struct {
		name    string
		end     error
		wantLen int
		wantErr error
	}{
		{"clean end", nil, len(data), nil},
		{"tar failed", failed, len(data) - tarRecord, failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() {
				_, _ = io.Copy(pw, iotest.HalfReader(bytes.NewReader(data)))
				pw.CloseWithError(tt.end)
			}()
			got, err := io.ReadAll(newTailGate(iotest.OneByteReader(pr)))
			if !errors.Is(err, tt.wantErr) || len(got) != tt.wantLen || !bytes.Equal(got, data[:len(got)]) {
				t.Errorf("read %d bytes (a prefix: %v), err %v; want %d bytes, err %v", len(got), bytes.Equal(got, data[:len(got)]), err, tt.wantLen, tt.wantErr)
			}
		})
	}
}
