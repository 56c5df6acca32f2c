package rpc

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
)

// FuzzStream feeds arbitrary bytes to the frame reader: it must never
// panic, never allocate past its limit, and always end at the end of the
// input.
func FuzzStream(f *testing.F) {
	for _, seed := range []string{
		"Content-Length: 44\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"exit\"}  ",
		"Content-Length: 5\r\n\r\n{bad}",
		"Content-Length: 99999999\r\n\r\n{}",
		"Content-Length: -1\r\n\r\n",
		"Content-Type: x\r\nContent-Length: 2\r\n\r\n{}Content-Length: 2\r\n\r\n[]",
		"\r\n\r\n\r\n",
		"Content-Length: 30\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":{},\"x\":1}",
	} {
		f.Add([]byte(seed))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		w := newWriter(io.Discard, log)
		defer w.close()
		s := newStream(bytes.NewReader(data), w, 1<<12, log)
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("stream returned %d messages from %d bytes without ending", i, len(data))
			}
			if _, _, err := s.Read(t.Context()); err != nil {
				return
			}
		}
	})
}
