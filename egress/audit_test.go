package egress

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestJSONAuditorWritesOneObjectPerLineUnderConcurrency(t *testing.T) {
	var buf bytes.Buffer
	a := NewJSONAuditor(&buf)
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a.Record(Record{Time: time.Now(), Session: "s1", Event: "decision", Method: "CONNECT",
				Host: "example.com", Port: 443 + i, Decision: "allow", Rule: "example.com:*"})
		})
	}
	wg.Wait()

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d", len(lines), n)
	}
	seen := make(map[int]bool)
	for _, line := range lines {
		var rec Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		seen[rec.Port] = true
	}
	if len(seen) != n {
		t.Errorf("got %d distinct records, want %d", len(seen), n)
	}
}

func TestJSONAuditorOmitsEmptyOptionalFields(t *testing.T) {
	tests := []struct {
		name    string
		rec     Record
		present []string
		absent  []string
	}{
		{
			name:    "decision",
			rec:     Record{Event: "decision", Method: "GET", Host: "example.com", Port: 80, Decision: "allow", Rule: "example.com"},
			present: []string{`"time"`, `"event":"decision"`, `"method":"GET"`, `"host":"example.com"`, `"port":80`, `"decision":"allow"`, `"rule":"example.com"`},
			absent:  []string{`"session"`, `"reason"`, `"bytes_up"`, `"bytes_down"`},
		},
		{
			name:    "close",
			rec:     Record{Session: "s1", Event: "close", Method: "CONNECT", Host: "example.com", Port: 443, Decision: "allow", Rule: "example.com", BytesUp: 10, BytesDown: 20},
			present: []string{`"session":"s1"`, `"event":"close"`, `"bytes_up":10`, `"bytes_down":20`},
			absent:  []string{`"reason"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			NewJSONAuditor(&buf).Record(tt.rec)
			line := buf.String()
			for _, s := range tt.present {
				if !strings.Contains(line, s) {
					t.Errorf("%s lacks %s", line, s)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(line, s) {
					t.Errorf("%s has %s", line, s)
				}
			}
		})
	}
}
