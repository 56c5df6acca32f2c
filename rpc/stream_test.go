package rpc

import (
	"strings"
	"testing"
)

func TestIDScannerFindsTopLevelID(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"number first", `{"id":42,"method":"m","params":{}}`, "42"},
		{"string last", `{"method":"m","params":{"data":"xyz"},"id":"abc"}`, `"abc"`},
		{"spaces", `{ "id" : -7 , "method":"m"}`, "-7"},
		{"nested id is not the id", `{"params":{"id":5},"method":"m"}`, "null"},
		{"id inside a string", `{"params":{"data":"\"id\":6"},"method":"m"}`, "null"},
		{"escaped quote before id", `{"params":{"data":"a\\\"b"},"id":8}`, "8"},
		{"key that starts with id", `{"idx":1,"id":2}`, "2"},
		{"object id is unusable", `{"id":{"a":1}}`, "null"},
		{"null id", `{"id":null}`, "null"},
		{"notification", `{"method":"m"}`, "null"},
		{"array", `[{"id":1}]`, "null"},
		{"overlong id", `{"id":"` + strings.Repeat("x", 300) + `"}`, "null"},
		{"truncated", `{"method":"m","id":3`, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Fed in pieces of every size, since a discarded body
			// arrives in arbitrary chunks.
			for size := 1; size <= len(tt.body); size++ {
				var sc idScanner
				for b := []byte(tt.body); len(b) > 0; {
					n := min(size, len(b))
					sc.Write(b[:n])
					b = b[n:]
				}
				if got := string(sc.result()); got != tt.want {
					t.Fatalf("pieces of %d: id = %s, want %s", size, got, tt.want)
				}
			}
		})
	}
}
