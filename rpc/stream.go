package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.lsp.dev/jsonrpc2"
)

// DefaultMaxMessage is the largest Content-Length the server accepts.
const DefaultMaxMessage = 16 << 20

// maxHeaderLine bounds one header line; longer lines are skipped unread
// rather than buffered.
const maxHeaderLine = 4 << 10

// stream is the jsonrpc2.Stream of a Server. It replaces jsonrpc2's own
// Content-Length stream, which ends the connection on the first bad
// message and allocates whatever Content-Length says: here a body that
// is not JSON, not a JSON-RPC message or larger than the limit is answered
// with an error response and reading goes on with the next message.
// Writes go to a priority writer (see writer).
type stream struct {
	in     *bufio.Reader
	max    int64
	w      *writer
	log    *slog.Logger
	closed atomic.Bool
}

func newStream(in io.Reader, w *writer, max int64, log *slog.Logger) *stream {
	return &stream{in: bufio.NewReaderSize(in, 64<<10), max: max, w: w, log: log}
}

// Read returns the next valid message. Bad messages are answered here and
// skipped; only the end of the input (io.EOF between messages, or
// io.ErrUnexpectedEOF inside one) or a read error is returned.
func (s *stream) Read(context.Context) (jsonrpc2.Message, int64, error) {
	for {
		if s.closed.Load() {
			return nil, 0, errors.New("stream closed")
		}
		body, n, err := s.readFrame()
		var bad *badMessage
		switch {
		case errors.As(err, &bad):
			s.log.Warn("bad message", "code", bad.err.Code, "err", bad.err.Message)
			s.w.reply(bad.id, bad.err)
			continue
		case err != nil:
			return nil, n, err
		}
		msg, err := jsonrpc2.DecodeMessage(body)
		if err != nil {
			id, werr := rejection(body, err)
			s.log.Warn("bad message", "code", werr.Code, "err", werr.Message)
			s.w.reply(id, werr)
			continue
		}
		return msg, n, nil
	}
}

// Write sends a message (the conn only writes responses: the server sends
// its notifications to the writer directly) ahead of queued output.
func (s *stream) Write(_ context.Context, msg jsonrpc2.Message) (int64, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return 0, fmt.Errorf("marshal message: %w", err)
	}
	frame := frame(body)
	return int64(len(frame)), s.w.send(frame, high)
}

// Close makes later Reads fail. It leaves the input and the writer to the
// Server, which drains the writer after tearing sessions down.
func (s *stream) Close() error {
	s.closed.Store(true)
	return nil
}

// badMessage is a message that was read whole but cannot be served; id is
// its request id when known, else JSON null.
type badMessage struct {
	id  json.RawMessage
	err *jsonrpc2.Error
}

func (b *badMessage) Error() string { return b.err.Message }

// readFrame reads one Content-Length framed body. Header names are
// case-insensitive and unknown headers (or lines that are not headers) are
// skipped, which also lets the reader find the next frame after junk.
func (s *stream) readFrame() ([]byte, int64, error) {
	var total int64
	length := int64(-1)
	var lengthErr string
	lines := 0
	for {
		line, n, err := s.readLine()
		total += n
		if err != nil {
			if errors.Is(err, io.EOF) && total == 0 {
				return nil, 0, io.EOF
			}
			return nil, total, fmt.Errorf("read header: %w", io.ErrUnexpectedEOF)
		}
		if line == "" {
			if lines == 0 {
				continue // a stray line break between frames
			}
			break
		}
		lines++
		name, value, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil || v < 0 {
			lengthErr = fmt.Sprintf("invalid Content-Length %q", strings.TrimSpace(value))
			continue
		}
		length = v
	}
	if length < 0 {
		msg := "missing Content-Length header"
		if lengthErr != "" {
			msg = lengthErr
		}
		return nil, total, &badMessage{id: nullID, err: rpcError(CodeParseError, ErrorData{
			Kind: KindParseError,
			Hint: "frame every message as 'Content-Length: N\\r\\n\\r\\n' followed by N bytes of JSON",
		}, "%s", msg)}
	}
	if length > s.max {
		return s.discard(length, total)
	}
	body := make([]byte, length)
	n, err := io.ReadFull(s.in, body)
	total += int64(n)
	if err != nil {
		return nil, total, fmt.Errorf("read body: %w", io.ErrUnexpectedEOF)
	}
	return body, total, nil
}

// readLine reads one header line without its line break. A line longer
// than maxHeaderLine is consumed and returned as "<junk>" so that it is
// skipped like any other line that is not a header.
func (s *stream) readLine() (string, int64, error) {
	var total int64
	long := false
	for {
		chunk, err := s.in.ReadSlice('\n')
		total += int64(len(chunk))
		switch {
		case errors.Is(err, bufio.ErrBufferFull) || (err == nil && long):
			long = true
			if err == nil {
				return "<junk>", total, nil
			}
		case err != nil:
			return "", total, err
		case total > maxHeaderLine:
			return "<junk>", total, nil
		default:
			return strings.TrimRight(string(chunk), "\r\n"), total, nil
		}
	}
}

// discard skips an oversized body without keeping it, looking for its
// request id on the way so that the error answers the request.
func (s *stream) discard(length, total int64) ([]byte, int64, error) {
	var sc idScanner
	n, err := io.CopyN(&sc, s.in, length)
	total += n
	if err != nil {
		return nil, total, fmt.Errorf("skip oversized body: %w", io.ErrUnexpectedEOF)
	}
	return nil, total, &badMessage{id: sc.result(), err: rpcError(CodeInvalidRequest, ErrorData{
		Kind:  KindMessageTooLarge,
		Hint:  fmt.Sprintf("send messages of at most %d bytes; copy large files with bottle/cp", s.max),
		Limit: s.max,
	}, "message of %d bytes exceeds the limit of %d bytes (%s); it was skipped", length, s.max, sizeName(s.max))}
}

func sizeName(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

var nullID = json.RawMessage("null")

// rejection answers a body that jsonrpc2 could not decode: -32700 when it
// is not JSON, else -32600, with the request's id when it has a usable one.
func rejection(body []byte, decodeErr error) (json.RawMessage, *jsonrpc2.Error) {
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nullID, rpcError(CodeParseError, ErrorData{
			Kind: KindParseError,
			Hint: "send one JSON object per message",
		}, "parse error: %v", err)
	}
	reason := decodeErr.Error()
	var head struct {
		ID json.RawMessage `json:"id"`
	}
	switch {
	case bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")):
		reason = "batch messages are not supported"
	case json.Unmarshal(body, &head) != nil:
		reason = "a message must be a JSON object"
	}
	return usableID(head.ID), rpcError(CodeInvalidRequest, ErrorData{
		Kind: KindInvalidRequest,
		Hint: `send {"jsonrpc":"2.0","id":N,"method":M,"params":{...}} with an integer (32-bit) or string id`,
	}, "invalid request: %s", reason)
}

// usableID returns id when it is a JSON string or number, else null.
func usableID(id json.RawMessage) json.RawMessage {
	id = bytes.TrimSpace(id)
	if len(id) == 0 || !json.Valid(id) {
		return nullID
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return id
	}
	return nullID
}

// idScanner finds the top-level "id" member of a JSON object written to
// it in pieces, keeping nothing else: it follows strings and nesting byte
// by byte, and captures the value after a top-level "id" key.
type idScanner struct {
	depth     int
	inString  bool
	escaped   bool
	keyNext   bool   // at depth 1, the next string is a key
	inKey     bool   // reading a key at depth 1
	key       []byte // the key read, up to 3 bytes
	capturing bool   // reading the value of "id"
	value     []byte
	found     json.RawMessage
}

// maxIDLen bounds a captured id; longer values are not ids worth echoing.
const maxIDLen = 256

func (sc *idScanner) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if sc.inString && !sc.escaped && !sc.inKey && !sc.capturing {
			// The bulk of a big message is one long string: skip to
			// where it may end.
			i := bytes.IndexAny(p, `"\`)
			if i < 0 {
				break
			}
			p = p[i:]
		}
		sc.step(p[0])
		p = p[1:]
	}
	return n, nil
}

func (sc *idScanner) step(c byte) {
	if sc.capturing {
		if sc.depth == 1 && !sc.inString && (c == ',' || c == '}') {
			sc.found = bytes.TrimSpace(sc.value)
			sc.capturing = false
		} else if len(sc.value) < maxIDLen {
			sc.value = append(sc.value, c)
		}
	}
	if sc.inString {
		switch {
		case sc.escaped:
			sc.escaped = false
		case c == '\\':
			sc.escaped = true
		case c == '"':
			sc.inString = false
			sc.inKey = false
			return
		}
		if sc.inKey && len(sc.key) < 3 {
			sc.key = append(sc.key, c)
		}
		return
	}
	switch c {
	case '"':
		sc.inString = true
		if sc.depth == 1 && sc.keyNext {
			sc.inKey, sc.keyNext, sc.key = true, false, sc.key[:0]
		}
	case '{', '[':
		sc.depth++
		sc.keyNext = sc.depth == 1 && c == '{'
	case '}', ']':
		sc.depth--
	case ',':
		sc.keyNext = sc.depth == 1
	case ':':
		if sc.depth == 1 && string(sc.key) == "id" {
			sc.capturing, sc.value = true, sc.value[:0]
		}
		sc.key = sc.key[:0]
	}
}

// result is the id found, or null.
func (sc *idScanner) result() json.RawMessage {
	if sc.found == nil || len(sc.value) >= maxIDLen {
		return nullID
	}
	return usableID(sc.found)
}

// frame puts the Content-Length header before body.
func frame(body []byte) []byte {
	return append(appendHeader(make([]byte, 0, len(body)+32), len(body)), body...)
}

// appendHeader appends the header of a message whose body is n bytes.
func appendHeader(b []byte, n int) []byte {
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "\r\n\r\n"...)
}

// priority orders the writer's queues.
type priority int

const (
	// high: responses, $/progress, window/logMessage, bottle/egress.
	high priority = iota
	// low: bottle/output and bottle/exit, in the order sent, so an exec's
	// exit always follows its output.
	low
)

// maxHighQueue bounds the high queue for notifications that may be
// dropped (bottle/egress) when the client stops reading.
const maxHighQueue = 10000

// writer is the one goroutine that writes to the output. It has two
// queues: a message in the high queue goes out before any queued output,
// so a flood of bottle/output never delays a reply by more than the
// message being written. The low queue needs no bound of its own: every
// byte in it is output that was sent and not yet acked, which the
// flow-control window caps per exec, so memory stays flat even when the
// client stops reading. Consecutive messages are coalesced into one write
// of up to 64 KiB; the buffer is flushed when the queues run empty or
// after a high-priority message, so replies are never held back.
type writer struct {
	out *bufio.Writer
	log *slog.Logger

	mu      sync.Mutex
	high    [][]byte
	low     [][]byte
	busy    bool          // a message is out of the queues and not yet flushed
	wake    chan struct{} // signalled on send and close
	idle    chan struct{} // closed and replaced when the queues run empty
	closed  bool
	err     error
	failed  chan struct{} // closed when err is set
	dropped int
}

func newWriter(out io.Writer, log *slog.Logger) *writer {
	w := &writer{
		out:    bufio.NewWriterSize(out, 64<<10),
		log:    log,
		wake:   make(chan struct{}, 1),
		idle:   make(chan struct{}),
		failed: make(chan struct{}),
	}
	go w.run()
	return w
}

var errWriterClosed = errors.New("output closed")

// send queues one framed message.
func (w *writer) send(frame []byte, p priority) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enqueue(frame, p)
}

// enqueue is send with w.mu held.
func (w *writer) enqueue(frame []byte, p priority) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errWriterClosed
	}
	if p == high {
		w.high = append(w.high, frame)
	} else {
		w.low = append(w.low, frame)
	}
	signal(w.wake)
	return nil
}

// sendDroppable queues a high-priority message unless the high queue is
// full, which only happens when the client has stopped reading.
func (w *writer) sendDroppable(frame []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.high) >= maxHighQueue {
		w.dropped++
		return
	}
	_ = w.enqueue(frame, high) // a closed or failed writer already logged why
}

// reply queues an error response to the request with the given raw id.
func (w *writer) reply(id json.RawMessage, e *jsonrpc2.Error) {
	body, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *jsonrpc2.Error `json:"error"`
	}{"2.0", id, e})
	if err != nil {
		w.log.Error("marshal error response", "err", err)
		return
	}
	_ = w.send(frame(body), high) // a closed or failed writer already logged why
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (w *writer) run() {
	for {
		msg, p, ok := w.next()
		if !ok {
			return
		}
		_, err := w.out.Write(msg)
		if err == nil && (p == high || w.queued() == 0) {
			err = w.out.Flush()
		}
		w.mu.Lock()
		w.busy = false
		if err != nil && w.err == nil {
			w.err = fmt.Errorf("write output: %w", err)
			w.log.Error("output failed; dropping what is queued", "err", err)
			w.high, w.low = nil, nil
			close(w.failed)
		}
		if len(w.high)+len(w.low) == 0 {
			close(w.idle)
			w.idle = make(chan struct{})
		}
		failed := w.err != nil
		w.mu.Unlock()
		if failed {
			return
		}
	}
}

// next takes the next message, high queue first, waiting for one; false
// once the writer is closed and empty.
func (w *writer) next() ([]byte, priority, bool) {
	for {
		w.mu.Lock()
		q, p := &w.high, high
		if len(w.high) == 0 {
			q, p = &w.low, low
		}
		switch {
		case len(*q) > 0:
			msg := (*q)[0]
			(*q)[0] = nil
			*q = (*q)[1:]
			w.busy = true
			w.mu.Unlock()
			return msg, p, true
		case w.closed:
			w.mu.Unlock()
			return nil, 0, false
		}
		w.mu.Unlock()
		<-w.wake
	}
}

// failure is the write error that stopped the writer, if any.
func (w *writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.high) + len(w.low)
}

// drain waits until everything queued is written and flushed.
func (w *writer) drain(ctx context.Context) error {
	for {
		w.mu.Lock()
		empty := len(w.high)+len(w.low) == 0 && !w.busy
		idle, err := w.idle, w.err
		w.mu.Unlock()
		if err != nil {
			return err
		}
		if empty {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("drain output: %w", context.Cause(ctx))
		}
	}
}

// close stops the writer: what is still queued is dropped (drain first to
// write it). It does not wait for a write blocked on a client that stopped
// reading; the goroutine ends when that write returns.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.high, w.low = nil, nil
	dropped := w.dropped
	w.mu.Unlock()
	signal(w.wake)
	if dropped > 0 {
		w.log.Warn("egress notifications dropped while the client was not reading", "count", dropped)
	}
}
