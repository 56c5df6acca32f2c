package egress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on questions: an agent that tries host after host must not bury
// the user in prompts.
const (
	askRate    = 10          // questions asked per askWindow at most
	askWindow  = time.Minute // sliding
	maxPending = 20          // questions waiting for an answer at most
)

// Reasons of refusals that were, or could have been, asked about.
const (
	reasonDenied      = "denied by the user"
	reasonNoAnswer    = "no answer in time"
	reasonTooMany     = "too many questions"
	reasonNoOneToAsk  = "not on the allowlist (no one is left to ask: the control channel closed)"
	reasonClientGone  = "the client went away before the answer"
	maxControlLineLen = 1 << 20 // a policy line carries whole lists
)

// SetPolicy replaces the live allowlist and blocklist. Requests decided
// after it returns use the new lists; tunnels already open are left alone.
// A bad entry changes nothing and is returned. Either way the change, or
// its refusal, is audited with client, who asked for it.
func (p *Proxy) SetPolicy(allow, block []string, client string) error {
	p.policyMu.Lock()
	defer p.policyMu.Unlock()
	rec := p.record(EventPolicy, "", "", 0)
	rec.Client = client
	next, err := compilePolicy(allow, block)
	if err != nil {
		rec.Decision, rec.Reason = DecisionDeny, strings.TrimPrefix(err.Error(), "egress: ")
		p.audit.Record(rec)
		return err
	}
	oldAllow, oldBlock := p.policy.Load().entries()
	rec.Decision = DecisionAllow
	rec.Change = describeChange(oldAllow, oldBlock, allow, block)
	p.policy.Store(next)
	p.audit.Record(rec)
	return nil
}

// describeChange summarizes a policy change for the audit, as
// "allow +a.test:443 -b.test; block +c.test", or "unchanged".
func describeChange(oldAllow, oldBlock, newAllow, newBlock []string) string {
	var parts []string
	for _, l := range []struct {
		name     string
		old, new []string
	}{{"allow", oldAllow, newAllow}, {"block", oldBlock, newBlock}} {
		var b strings.Builder
		for _, e := range l.new {
			if !slices.Contains(l.old, e) {
				fmt.Fprintf(&b, " +%s", e)
			}
		}
		for _, e := range l.old {
			if !slices.Contains(l.new, e) {
				fmt.Fprintf(&b, " -%s", e)
			}
		}
		if b.Len() > 0 {
			parts = append(parts, l.name+b.String())
		}
	}
	if len(parts) == 0 {
		return "unchanged"
	}
	return strings.Join(parts, "; ")
}

// Answer answers question id: allow lets the connections held for it
// through, this once; otherwise they are refused. An id that is not pending
// (unknown, already answered, timed out) is ignored.
func (p *Proxy) Answer(id uint64, allow bool) {
	if p.ask != nil {
		p.ask.answer(id, allow)
	}
}

// StopAsking refuses the questions pending and asks no more: there is no
// one left to answer them. The proxy goes on with the policy it has.
func (p *Proxy) StopAsking() {
	if p.ask != nil {
		p.ask.stop()
	}
}

// served is the proxy Run serves. A proxy that waits (Config.Wait) serves
// one that refuses everything until a configure line brings the config it
// runs with from then on; either way every request, and every refusal of
// net/http's, goes to the proxy of that moment.
type served struct {
	cur      atomic.Pointer[Proxy]
	dial     time.Duration
	audit    Auditor
	errorLog *log.Logger
	// waiting is read and written by the control goroutine only.
	waiting bool
}

func (s *served) proxy() *Proxy { return s.cur.Load() }

func (s *served) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.proxy().ServeHTTP(w, r) }

// control applies the control lines of r until it ends, then stops asking.
// A line it cannot apply is reported to errorLog and skipped: the stream
// stays usable.
func (s *served) control(r io.Reader) {
	defer func() { s.proxy().StopAsking() }()
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxControlLineLen)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := s.apply(line); err != nil {
			s.errorLog.Printf("control line refused: %v", err)
		}
	}
	if err := sc.Err(); err != nil {
		s.errorLog.Printf("control channel: %v", err)
	}
}

func (s *served) apply(line []byte) error {
	c, err := decodeControl(line)
	if err != nil {
		return err
	}
	switch {
	case c.Op == OpConfigure:
		return s.configure(c)
	case s.waiting:
		return fmt.Errorf("op %q before the proxy's configure line: it refuses everything until configured", c.Op)
	}
	return s.proxy().applyControl(c)
}

// configure makes the proxy of c.Config and serves it from now on. Only a
// waiting proxy takes it, once: a running proxy's DLP, trust and questions
// never change, its lists only through policy lines. The change is audited
// as a policy record naming c.Client (a refusal too), which tells the
// server that requests are now decided by the new config.
func (s *served) configure(c Control) error {
	old := s.proxy()
	refuse := func(err error) error {
		rec := old.record(EventPolicy, "", "", 0)
		rec.Client, rec.Decision, rec.Reason = c.Client, DecisionDeny, strings.TrimPrefix(err.Error(), "egress: ")
		old.audit.Record(rec)
		return err
	}
	switch {
	case !s.waiting:
		return refuse(errors.New("egress: configure: the proxy is configured already"))
	case c.Config == nil:
		return refuse(errors.New("egress: configure: no config"))
	case c.Config.Wait:
		return refuse(errors.New("egress: configure: the config must not wait again"))
	}
	opts, err := c.Config.options()
	if err != nil {
		return refuse(err)
	}
	opts.Audit = s.audit
	p := newProxy(opts, s.dial)
	p.errorLog = s.errorLog
	s.cur.Store(p)
	s.waiting = false
	rec := p.record(EventPolicy, "", "", 0)
	rec.Client, rec.Decision = c.Client, DecisionAllow
	rec.Change = "configured; " + describeChange(nil, nil, c.Config.Allow, c.Config.Block)
	p.audit.Record(rec)
	return nil
}

func decodeControl(line []byte) (Control, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var c Control
	if err := dec.Decode(&c); err != nil {
		// Not quoted: a control line is the server's, but a broken one
		// may hold anything.
		return Control{}, fmt.Errorf("not a control object: %w", err)
	}
	return c, nil
}

func (p *Proxy) apply(line []byte) error {
	c, err := decodeControl(line)
	if err != nil {
		return err
	}
	return p.applyControl(c)
}

func (p *Proxy) applyControl(c Control) error {
	switch c.Op {
	case OpPolicy:
		return p.SetPolicy(c.Allow, c.Block, c.Client)
	case OpAnswer:
		p.Answer(c.ID, c.Decision == DecisionAllow)
		return nil
	case OpConfigure:
		return errors.New("configure: only a waiting proxy takes a config")
	default:
		return fmt.Errorf("unknown op %q", c.Op)
	}
}

// asker holds the questions a proxy asks on its audit stream.
type asker struct {
	timeout time.Duration
	audit   Auditor
	record  func(event, method, host string, port int) Record

	mu      sync.Mutex
	stopped bool
	lastID  uint64
	pending map[string]*question // by host:port
	byID    map[uint64]*question
	asked   []time.Time // when the questions of the last askWindow were asked
}

// question is one pending question; every connection held for its
// host:port waits on it.
type question struct {
	id    uint64
	key   string
	timer *time.Timer
	done  chan struct{} // closed once allow and reason are set
	held  int           // connections waiting on it, guarded by asker.mu
	allow bool
	// reason says why the connections are refused.
	reason string
}

func newAsker(timeout time.Duration, audit Auditor, record func(event, method, host string, port int) Record) *asker {
	return &asker{
		timeout: timeout,
		audit:   audit,
		record:  record,
		pending: make(map[string]*question),
		byID:    make(map[uint64]*question),
	}
}

// ask holds the caller until the user lets method host:port through or
// not, asking unless a question for host:port is already pending, whose
// answer it then shares. It returns at once, refused, when it may not ask.
func (a *asker) ask(done <-chan struct{}, method, host string, port int) (allowed bool, reason string) {
	q, reason := a.question(method, host, port)
	if q == nil {
		return false, reason
	}
	defer func() {
		a.mu.Lock()
		q.held--
		a.mu.Unlock()
	}()
	select {
	case <-q.done:
		return q.allow, q.reason
	case <-done:
		return false, reasonClientGone
	}
}

// question returns the question pending for host:port, or asks a new one,
// or returns nil and why it may not ask.
func (a *asker) question(method, host string, port int) (*question, string) {
	key := net.JoinHostPort(host, strconv.Itoa(port))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return nil, reasonNoOneToAsk
	}
	if q, ok := a.pending[key]; ok {
		q.held++
		return q, ""
	}
	now := time.Now()
	a.asked = slices.DeleteFunc(a.asked, func(t time.Time) bool { return now.Sub(t) >= askWindow })
	if len(a.asked) >= askRate || len(a.pending) >= maxPending {
		return nil, reasonTooMany
	}
	a.asked = append(a.asked, now)
	a.lastID++
	q := &question{id: a.lastID, key: key, done: make(chan struct{}), held: 1}
	a.pending[key], a.byID[q.id] = q, q
	q.timer = time.AfterFunc(a.timeout, func() { a.settle(q, false, reasonNoAnswer) })
	// Under the lock: an answer cannot overtake its question on the wire.
	rec := a.record(EventAsk, method, host, port)
	rec.ID = q.id
	a.audit.Record(rec)
	return q, ""
}

func (a *asker) answer(id uint64, allow bool) {
	a.mu.Lock()
	q := a.byID[id]
	a.mu.Unlock()
	if q != nil {
		a.settle(q, allow, reasonDenied)
	}
}

// settle decides q once: the first of the answer, the timeout and stop
// wins.
func (a *asker) settle(q *question, allow bool, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byID[q.id] != q {
		return
	}
	delete(a.byID, q.id)
	delete(a.pending, q.key)
	q.timer.Stop()
	q.allow = allow
	if !allow {
		q.reason = reason
	}
	close(q.done)
}

func (a *asker) stop() {
	a.mu.Lock()
	a.stopped = true
	qs := make([]*question, 0, len(a.byID))
	for _, q := range a.byID {
		qs = append(qs, q)
	}
	a.mu.Unlock()
	for _, q := range qs {
		a.settle(q, false, reasonNoOneToAsk)
	}
}
