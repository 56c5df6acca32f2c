// Package termclient is the terminal client of bottle: it drives a
// bottle-rpc server over the same JSON-RPC protocol an editor uses, shows
// the preflight, asks before starting, and runs the agent in the local
// terminal (raw mode, window size, SIGWINCH).
package termclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"go.lsp.dev/jsonrpc2"
	"golang.org/x/term"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/rpc"
)

// Options say what to run and where the terminal is.
type Options struct {
	Agent    string
	Manifest string
	Cwd      string
	CopyGit  bool
	// NoFetch leaves the agent's work in the bottle when it exits; without
	// it a bottle given the folder's .git (CopyGit) has its work fetched
	// into the repository at Cwd as a branch before it is closed.
	NoFetch bool
	Yes     bool // start without asking
	// Allow adds entries (the manifest's egress.allow syntax) to this
	// session's allowlist, before the agent runs.
	Allow []string
	Argv  []string
	// Persist starts a bottle that outlives this client: the detach keys
	// (or the connection's end) leave it running for `bottle-rpc attach`.
	// It is closed when the agent exits, as without Persist, after the
	// fetch; a detach fetches nothing.
	Persist bool

	Terminal
}

// Terminal is where a client runs.
type Terminal struct {
	In  *os.File // the terminal (or any input)
	Out io.Writer
	Err io.Writer // preflight, progress and messages
	// DetachKeys detach from a persistent bottle (zero: DefaultDetachKeys)
	DetachKeys DetachKeys
}

// Run connects to a server over conn, starts the bottle, runs the agent and
// closes the bottle. It returns the agent's exit code. With Persist the
// user may detach instead: Run then returns 0 and the bottle runs on.
func Run(ctx context.Context, conn io.ReadWriteCloser, opts Options) (int, error) {
	// A bad entry is refused before anything starts, with the proxy's own
	// reason, rather than after the bottle is up.
	if _, err := egress.NewPolicy(opts.Allow); err != nil {
		return 2, fmt.Errorf("--allow: %w", err)
	}
	c := newClient(ctx, conn, opts.Terminal)
	defer c.conn.Close()
	caps, err := c.initialize(ctx, "bottle-rpc run")
	if err != nil {
		return 1, err
	}
	defer c.shutdown()

	var plan rpc.PlanResult
	if err := c.call(ctx, rpc.MethodPlan, rpc.PlanParams{Agent: opts.Agent, Manifest: opts.Manifest, Cwd: opts.Cwd}, &plan); err != nil {
		return 1, err
	}
	printPlan(opts.Err, &plan, opts.Allow)
	fetch := opts.fetching() && printFetchPlan(opts.Err, plan.Agent, opts.Cwd, caps.Methods)
	if !opts.Yes && !confirm(opts.In, opts.Err) {
		fmt.Fprintln(opts.Err, "not started")
		return 1, nil
	}

	var started rpc.StartResult
	err = c.call(ctx, rpc.MethodStart, rpc.StartParams{
		Agent: opts.Agent, Manifest: opts.Manifest, Cwd: opts.Cwd, CopyGit: opts.CopyGit,
		WorkDoneToken: json.RawMessage(`"start"`), Persist: opts.Persist,
	}, &started)
	if err != nil {
		return 1, err
	}
	keep := false
	defer func() {
		if !keep {
			c.closeSession(ctx, started.Session)
		}
	}()
	if len(opts.Allow) > 0 {
		if err := c.call(ctx, rpc.MethodAllow, rpc.AllowParams{Session: started.Session, Entries: opts.Allow}, nil); err != nil {
			return 1, err
		}
	}
	fmt.Fprintf(opts.Err, "bottle %s ready: container %s, %s\r\n", started.Session, started.Container, started.RuntimeLabel)
	if opts.Persist {
		fmt.Fprintf(opts.Err, "%s detaches, leaving it running\r\n", opts.DetachKeys.orDefault())
	}
	code, end, err := c.runExec(ctx, started.Session, opts.Argv, opts.Persist)
	if err != nil {
		return 1, err
	}
	if opts.Persist && end != exited {
		keep = true
		c.sayDetached(started.Session)
		return 0, nil
	}
	// Only an agent that exited has finished its work; one interrupted is
	// closed as it is, and close says what it took with it.
	if fetch && end == exited {
		c.fetchWork(ctx, started.Session, opts.Cwd)
	}
	return code, nil
}

// client follows one exec, so every bottle/output and bottle/exit it shows
// is that exec's, even one that arrives before the reply to bottle/exec.
type client struct {
	term   Terminal
	conn   jsonrpc2.Conn
	exited chan rpc.ExitParams

	mu    sync.Mutex
	exec  string // the exec shown; "" shows every exec (run starts only one)
	reset bool   // reset the terminal before the next output shown
}

func newClient(ctx context.Context, conn io.ReadWriteCloser, t Terminal) *client {
	c := &client{term: t, exited: make(chan rpc.ExitParams, 1)}
	c.conn = jsonrpc2.NewConn(jsonrpc2.NewStream(conn))
	c.conn.Go(ctx, c.handle)
	return c
}

// initialize opens the connection and returns what the server can do.
func (c *client) initialize(ctx context.Context, name string) (rpc.ServerCapabilities, error) {
	var res rpc.InitializeResult
	if err := c.call(ctx, rpc.MethodInitialize, rpc.InitializeParams{ClientInfo: &rpc.ClientInfo{Name: name}}, &res); err != nil {
		return rpc.ServerCapabilities{}, err
	}
	return res.Capabilities, c.conn.Notify(ctx, rpc.MethodInitialized, struct{}{})
}

func (c *client) call(ctx context.Context, method string, params, result any) error {
	_, err := c.conn.Call(ctx, method, params, result)
	if err != nil {
		var rpcErr *jsonrpc2.Error
		if errors.As(err, &rpcErr) {
			// Wrapped, so that the error's data (its hint) can be read.
			return fmt.Errorf("%s: %w", method, rpcErr)
		}
		return fmt.Errorf("%s: %w", method, err)
	}
	return nil
}

func (c *client) shutdown() {
	ctx := context.Background()
	c.conn.Call(ctx, rpc.MethodShutdown, nil, nil)
	c.conn.Notify(ctx, rpc.MethodExit, nil)
}

// handle takes the server's notifications. It runs on the read goroutine,
// so it only writes to the terminal and hands the rest off.
func (c *client) handle(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
	switch req.Method() {
	case rpc.MethodOutput:
		var p rpc.OutputParams
		if json.Unmarshal(req.Params(), &p) == nil {
			c.output(ctx, p)
		}
	case rpc.MethodExecExit:
		var p rpc.ExitParams
		if json.Unmarshal(req.Params(), &p) == nil && c.shows(p.Exec) {
			c.exited <- p
		}
	case rpc.MethodProgress:
		var p rpc.ProgressParams
		if json.Unmarshal(req.Params(), &p) == nil && p.Value.Message != "" {
			fmt.Fprintf(c.term.Err, "  %s\n", auditlog.Printable(p.Value.Message))
		}
	case rpc.MethodLogMessage:
		var p rpc.LogMessageParams
		if json.Unmarshal(req.Params(), &p) == nil && p.Type <= rpc.MessageWarning {
			fmt.Fprintf(c.term.Err, "bottle: %s\r\n", auditlog.Printable(p.Message))
		}
	case rpc.MethodEgress:
		var p rpc.EgressParams
		if json.Unmarshal(req.Params(), &p) == nil && p.Record.Decision == "deny" && p.Record.Event == "decision" {
			fmt.Fprint(c.term.Err, refusal(p.Record))
		}
	}
	if req.Method() != "" && isCall(req) {
		return reply(ctx, nil, jsonrpc2.NewError(jsonrpc2.MethodNotFound, "the terminal client takes no requests"))
	}
	return nil
}

// refusal is the line a refused connection prints. The agent chose the
// host: shown escaped, it cannot draw a line of its own or hide one. Only
// default-deny is lifted by an allow entry (a blocklist, DLP, SSRF or TLS
// refusal is not), so only then does the line say how; and only for an
// entry the proxy would take, which is a host name or IP and a port, so
// nothing the agent chose can turn it into another shell command.
func refusal(r rpc.EgressRecord) string {
	q := auditlog.Printable
	line := fmt.Sprintf("\r\nbottle: egress to %s:%d refused (%s)", q(r.Host), r.Port, q(r.Rule))
	if entry := net.JoinHostPort(r.Host, strconv.Itoa(r.Port)); r.Rule == "default-deny" && validEntry(entry) {
		line += fmt.Sprintf("; to allow it next time: bottle-rpc run --allow %s, or egress.allow in bottle.yaml", q(entry))
	}
	return line + "\r\n"
}

func validEntry(entry string) bool {
	_, err := egress.NewPolicy([]string{entry})
	return err == nil
}

func isCall(req jsonrpc2.Request) bool {
	_, ok := req.(*jsonrpc2.Call)
	return ok
}

// output writes the shown exec's output and acks every exec's: output
// nobody here reads must not hold a process back.
func (c *client) output(ctx context.Context, p rpc.OutputParams) {
	if c.shows(p.Exec) {
		if c.takeReset(p.Resync) {
			io.WriteString(c.term.Out, resetTerminal)
		}
		c.term.Out.Write(p.Data)
	}
	c.conn.Notify(ctx, rpc.MethodAck, rpc.AckParams{Exec: p.Exec, Bytes: int64(len(p.Data))})
}

// resetTerminal is RIS (ESC c): output that resumes from an arbitrary
// byte, a replay or a resync, is drawn on a terminal in its first state.
const resetTerminal = "\x1bc"

func (c *client) shows(exec string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exec == "" || c.exec == exec
}

// follow shows exec from now on, and only it; reset: the next output
// shown starts from a reset terminal.
func (c *client) follow(exec string, reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exec, c.reset = exec, reset
}

func (c *client) takeReset(resync bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	reset := c.reset || resync
	c.reset = false
	return reset
}

// ending is how following an exec ended.
type ending int

const (
	exited      ending = iota // the process ended
	detached                  // the user detached (or the terminal went)
	interrupted               // the context ended
)

// runExec runs argv in the session with the terminal's size and follows it.
func (c *client) runExec(ctx context.Context, session string, argv []string, persist bool) (int, ending, error) {
	fd := int(c.term.In.Fd())
	cols, rows := 80, 24
	if term.IsTerminal(fd) {
		if w, h, err := term.GetSize(fd); err == nil {
			cols, rows = w, h
		}
	}
	tty := true
	var res rpc.ExecResult
	if err := c.call(ctx, rpc.MethodExec, rpc.ExecParams{Session: session, Argv: argv, Tty: &tty, Cols: uint(cols), Rows: uint(rows)}, &res); err != nil {
		return 1, exited, err
	}
	return c.attached(ctx, session, &windowSize{c: c, exec: res.Exec, fd: fd, cols: cols, rows: rows}, persist)
}

// attached runs the exec in the local terminal, in raw mode, forwarding
// input, resizes and output until the process exits, the context ends or,
// when detachable, the user types the detach keys.
func (c *client) attached(ctx context.Context, session string, size *windowSize, detachable bool) (int, ending, error) {
	isTerm := term.IsTerminal(size.fd)
	if isTerm {
		old, err := term.MakeRaw(size.fd)
		if err != nil {
			return 1, exited, fmt.Errorf("putting the terminal in raw mode: %w", err)
		}
		defer term.Restore(size.fd, old)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				size.sync(ctx)
			}
		}()
		size.sync(ctx)
	}
	detach := make(chan struct{})
	go func() {
		keys := detector{seq: c.term.DetachKeys.orDefault().seq}
		buf := make([]byte, 4096)
		for {
			n, err := c.term.In.Read(buf)
			if n > 0 {
				pass, done := buf[:n], false
				if detachable {
					pass, done = keys.feed(buf[:n])
				}
				if isTerm {
					size.sync(ctx)
				}
				if len(pass) > 0 {
					c.conn.Notify(ctx, rpc.MethodInput, rpc.InputParams{Exec: size.exec, Data: pass})
				}
				if done {
					close(detach)
					return
				}
			}
			if err != nil {
				if detachable {
					// The terminal went away: the bottle stays for another.
					close(detach)
					return
				}
				c.conn.Notify(ctx, rpc.MethodInput, rpc.InputParams{Exec: size.exec, EOF: true})
				return
			}
		}
	}()
	select {
	case ex := <-c.exited:
		return c.exitCode(ex), exited, nil
	case <-detach:
		io.WriteString(c.term.Out, restoreModes)
		if err := c.call(ctx, rpc.MethodDetach, rpc.DetachParams{Session: session}, nil); err != nil {
			return 1, detached, err
		}
		return 0, detached, nil
	case <-ctx.Done():
		io.WriteString(c.term.Out, restoreModes)
		return 130, interrupted, nil
	case <-c.conn.Done():
		select {
		case ex := <-c.exited: // an exit read just before the end
			return c.exitCode(ex), exited, nil
		default:
		}
		io.WriteString(c.term.Out, restoreModes)
		return 1, exited, fmt.Errorf("the connection to the server ended: %w", c.conn.Err())
	}
}

// restoreModes undoes what a full-screen process may have turned on in
// the terminal and, left running, had no chance to turn off: the
// alternate screen, a hidden cursor, bracketed paste, mouse reports and
// colours.
const restoreModes = "\x1b[?1049l\x1b[?25h\x1b[?2004l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[0m"

// exitCode is the process's code, said why when it is unknown.
func (c *client) exitCode(ex rpc.ExitParams) int {
	if ex.Error != "" {
		fmt.Fprintf(c.term.Err, "\r\nbottle: %s\r\n", auditlog.Printable(ex.Error))
	}
	return ex.Code
}

// sayDetached tells the user, once the terminal is restored, how to come
// back.
func (c *client) sayDetached(session string) {
	fmt.Fprintf(c.term.Err, "\r\nbottle %s runs on; to come back: bottle-rpc attach %s\n", session, session)
}

// windowSize tells the server the terminal's size when it changed. Input
// checks it too before it is sent: SIGWINCH comes on its own goroutine,
// and what is typed right after a resize must reach the server after it.
type windowSize struct {
	c    *client
	exec string
	fd   int

	mu         sync.Mutex
	cols, rows int // the size last sent
}

func (s *windowSize) sync(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, h, err := term.GetSize(s.fd)
	if err != nil || w == s.cols && h == s.rows {
		return
	}
	s.cols, s.rows = w, h
	s.c.conn.Notify(ctx, rpc.MethodResize, rpc.ResizeParams{Exec: s.exec, Cols: uint(w), Rows: uint(h)})
}

// printPlan shows what the user is asked to approve, with the entries that
// --allow adds. A workspace's manifest chose these strings, so each is
// escaped: none may hide what follows it.
func printPlan(w io.Writer, p *rpc.PlanResult, extra []string) {
	q := auditlog.Printable
	fmt.Fprintf(w, "agent:    %s (bottle %s)\n", q(p.Agent), q(p.Bottle))
	fmt.Fprintf(w, "runtime:  %s\n", q(p.RuntimeLabel))
	fmt.Fprintf(w, "image:    %s\n", q(p.Image))
	fmt.Fprintf(w, "command:  %s\n", q(strings.Join(p.Command, " ")))
	fmt.Fprintf(w, "allow:    %s\n", q(strings.Join(p.Allow, ", ")))
	if len(extra) > 0 {
		fmt.Fprintf(w, "--allow:  %s (this session only)\n", q(strings.Join(extra, ", ")))
	}
	for _, it := range p.CopyIn {
		fmt.Fprintf(w, "copy in:  %s %s -> %s\n", q(it.What), q(it.From), q(it.To))
	}
}

func confirm(in io.Reader, out io.Writer) bool {
	fmt.Fprint(out, "Start this bottle? [y/N] ")
	// A byte at a time: what is typed after the answer belongs to the agent.
	var line []byte
	b := make([]byte, 1)
	for len(line) < 64 {
		n, err := in.Read(b)
		if n == 1 && b[0] == '\n' {
			break
		}
		line = append(line, b[:n]...)
		if err != nil {
			break
		}
	}
	answer := strings.ToLower(strings.TrimSpace(string(line)))
	return answer == "y" || answer == "yes"
}
