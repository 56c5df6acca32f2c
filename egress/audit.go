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
	Event     string    `json:"event"`                // "decision", "close", "ask" or "policy"
	Method    string    `json:"method"`               // CONNECT, GET, ...
	Host      string    `json:"host"`                 // lowercase, no trailing dot; as sent on a bad request, empty when net/http refused it unread
	Port      int       `json:"port"`                 // 0 on a bad request
	Decision  string    `json:"decision"`             // "allow" or "deny"
	Rule      string    `json:"rule"`                 // allowlist entry, "approved", "block:ENTRY", "default-deny", "bad-request", "ssrf-guard", "dlp:...", or a tunnel's: "tls-required", "tls-ech", "sni-mismatch", "tls-unreadable"
	Reason    string    `json:"reason,omitempty"`     // why denied, why a dial/upstream failed, why a tunnel broke
	BytesUp   int64     `json:"bytes_up,omitempty"`   // on "close": client->upstream bytes
	BytesDown int64     `json:"bytes_down,omitempty"` // on "close": upstream->client bytes
	ID        uint64    `json:"id,omitempty"`         // on "ask": the question's id, which Control.ID answers
	Change    string    `json:"change,omitempty"`     // on "policy": what changed, e.g. "allow +a.test:443 -b.test; block +c.test"
	Client    string    `json:"client,omitempty"`     // on "policy": who asked for the change (Control.Client)
}

// Values of Record fields.
const (
	// EventDecision is written once per request, before anything is dialled.
	EventDecision = "decision"
	// EventClose ends an allowed exchange that did not simply succeed: a
	// CONNECT tunnel that ended (with its byte counts), or a dial or upstream
	// failure (with its reason).
	EventClose = "close"
	// EventAsk is a question: may the held connection(s) to Host:Port go
	// through? Answered by a Control with op "answer" and this ID. No
	// Decision: the connection's decision record follows the answer.
	EventAsk = "ask"
	// EventPolicy is a change of the live allowlist and blocklist (Decision
	// allow, with Change and Client) or a change refused (Decision deny,
	// Reason naming the bad entry).
	EventPolicy = "policy"

	DecisionAllow = "allow"
	DecisionDeny  = "deny"

	ruleDefaultDeny = "default-deny"
	ruleApproved    = "approved" // let through by an answer to a question
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
