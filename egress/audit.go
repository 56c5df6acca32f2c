package egress

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Record is one audit line. It never carries request headers or bodies:
// they hold the agent's credentials.
type Record struct {
	Time      time.Time `json:"time"`
	Session   string    `json:"session,omitempty"`
	Event     string    `json:"event"`                // "decision" or "close"
	Method    string    `json:"method"`               // CONNECT, GET, ...
	Host      string    `json:"host"`                 // lowercase, no trailing dot; as sent on a bad request, empty when net/http refused it unread
	Port      int       `json:"port"`                 // 0 on a bad request
	Decision  string    `json:"decision"`             // "allow" or "deny"
	Rule      string    `json:"rule"`                 // allowlist entry, "block:ENTRY", "default-deny", "bad-request", "ssrf-guard", "dlp:...", or a tunnel's: "tls-required", "tls-ech", "sni-mismatch", "tls-unreadable"
	Reason    string    `json:"reason,omitempty"`     // why denied, why a dial/upstream failed, why a tunnel broke
	BytesUp   int64     `json:"bytes_up,omitempty"`   // on "close": client->upstream bytes
	BytesDown int64     `json:"bytes_down,omitempty"` // on "close": upstream->client bytes
}

// Values of Record fields.
const (
	// EventDecision is written once per request, before anything is dialled.
	EventDecision = "decision"
	// EventClose ends an allowed exchange that did not simply succeed: a
	// CONNECT tunnel that ended (with its byte counts), or a dial or upstream
	// failure (with its reason).
	EventClose = "close"

	DecisionAllow = "allow"
	DecisionDeny  = "deny"

	ruleDefaultDeny = "default-deny"
	ruleBadRequest  = "bad-request"
)

// Auditor writes records.
type Auditor interface{ Record(Record) }

// NewJSONAuditor returns an Auditor that writes one JSON object per line to w
// and is safe for concurrent use.
func NewJSONAuditor(w io.Writer) Auditor {
	return &jsonAuditor{enc: json.NewEncoder(w)}
}

type jsonAuditor struct {
	mu  sync.Mutex
	enc *json.Encoder // writes each record with a single Write
}

// Record drops write errors: Auditor cannot report them, and refusing
// traffic because the log sink broke would turn a logging fault into an
// outage the agent cannot explain.
func (a *jsonAuditor) Record(rec Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.enc.Encode(rec)
}
