package termclient

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/rpc"
)

// List returns every session of the server at the other end of conn.
func List(ctx context.Context, conn io.ReadWriteCloser) ([]rpc.SessionInfo, error) {
	c := newClient(ctx, conn, Terminal{Err: io.Discard})
	defer c.conn.Close()
	if _, err := c.initialize(ctx, "bottle-rpc ls"); err != nil {
		return nil, err
	}
	defer c.shutdown()
	return c.list(ctx)
}

func (c *client) list(ctx context.Context) ([]rpc.SessionInfo, error) {
	var res rpc.ListResult
	if err := c.call(ctx, rpc.MethodList, rpc.ListParams{}, &res); err != nil {
		return nil, err
	}
	return res.Sessions, nil
}

// Attach connects the terminal to a running exec of a bottle on the
// server at the other end of conn: target is a session, an exec, or ""
// for the only persistent bottle with a running terminal. The kept output
// is drawn first, on a reset terminal, then live output. It returns the
// exec's exit code, or 0 when the user detached.
func Attach(ctx context.Context, conn io.ReadWriteCloser, target string, t Terminal) (int, error) {
	c := newClient(ctx, conn, t)
	defer c.conn.Close()
	if _, err := c.initialize(ctx, "bottle-rpc attach"); err != nil {
		return 1, err
	}
	defer c.shutdown()
	sessions, err := c.list(ctx)
	if err != nil {
		return 1, err
	}
	session, exec, err := pick(sessions, target)
	if err != nil {
		return 1, err
	}
	// Said before bottle/attach: the replay may come before its reply, and
	// nothing may be written into the screen it draws.
	fmt.Fprintf(t.Err, "attaching to bottle %s, exec %s; %s detaches\r\n", session, exec, t.DetachKeys.orDefault())
	// Chosen before bottle/attach, for the same reason.
	c.follow(exec, true)
	var res rpc.AttachResult
	if err := c.call(ctx, rpc.MethodAttach, rpc.AttachParams{Session: session}, &res); err != nil {
		return 1, err
	}
	if info, ok := findExec(res.Session, exec); ok && !info.Running {
		return 1, fmt.Errorf("exec %s ended while attaching%s", exec, exitNote(info))
	}
	// No size yet: the first sync sends the terminal's, and the process
	// redraws for it.
	code, end, err := c.attached(ctx, session, &windowSize{c: c, exec: exec, fd: int(t.In.Fd())}, true)
	if err != nil {
		return 1, err
	}
	if end != exited {
		c.sayDetached(session)
		return 0, nil
	}
	c.closeIfDone(ctx, session)
	return code, nil
}

// closeIfDone closes a bottle whose last process ended with only this
// client there to see it, as tmux ends a session with its last pane: a
// `bottle-rpc run --persist` bottle is then gone as when run saw its agent
// exit. A bottle another client is attached to, or with a process still
// running, stays.
func (c *client) closeIfDone(ctx context.Context, session string) {
	sessions, err := c.list(ctx)
	if err != nil {
		return
	}
	for _, s := range sessions {
		if s.Session != session {
			continue
		}
		if s.State != "ready" || s.Attached > 1 || len(running(s)) > 0 {
			return
		}
		var res rpc.CloseResult
		if c.call(context.WithoutCancel(ctx), rpc.MethodClose, rpc.CloseParams{Session: session}, &res) == nil {
			fmt.Fprintf(c.term.Err, "bottle %s closed: its last process ended\n", session)
			c.sayUnfetched(session, res.Unfetched)
		}
	}
}

// pick chooses the session and exec to attach to: the target's one
// running terminal, or with no target the one running terminal of all
// persistent bottles. Anything less certain is an error that lists what
// the user can name.
func pick(sessions []rpc.SessionInfo, target string) (session, exec string, err error) {
	if target == "" {
		var choices []string
		for _, s := range sessions {
			if !s.Persist || s.State != "ready" {
				continue
			}
			for _, e := range running(s) {
				session, exec = s.Session, e.Exec
				choices = append(choices, choice(s, e))
			}
		}
		switch len(choices) {
		case 0:
			return "", "", fmt.Errorf("no persistent bottle has a running terminal (bottle-rpc ls lists the bottles)")
		case 1:
			return session, exec, nil
		}
		return "", "", fmt.Errorf("several bottles have a running terminal; name one:\n%s", strings.Join(choices, "\n"))
	}
	for _, s := range sessions {
		if s.Session == target {
			return pickExec(s)
		}
		if e, ok := findExec(s, target); ok {
			if !e.Running {
				return "", "", fmt.Errorf("exec %s has ended%s", target, exitNote(e))
			}
			if err := attachable(s); err != nil {
				return "", "", err
			}
			return s.Session, e.Exec, nil
		}
	}
	return "", "", fmt.Errorf("no bottle or exec %s on the daemon (bottle-rpc ls lists them)", auditlog.Printable(target))
}

func pickExec(s rpc.SessionInfo) (string, string, error) {
	if err := attachable(s); err != nil {
		return "", "", err
	}
	execs := running(s)
	switch len(execs) {
	case 0:
		return "", "", fmt.Errorf("bottle %s has no running terminal", s.Session)
	case 1:
		return s.Session, execs[0].Exec, nil
	}
	choices := make([]string, len(execs))
	for i, e := range execs {
		choices[i] = fmt.Sprintf("  bottle-rpc attach %s   # %s", e.Exec, command(e))
	}
	return "", "", fmt.Errorf("bottle %s has %d running terminals; name one:\n%s", s.Session, len(execs), strings.Join(choices, "\n"))
}

func attachable(s rpc.SessionInfo) error {
	if s.State == "ready" {
		return nil
	}
	msg := fmt.Sprintf("bottle %s is %s", s.Session, s.State)
	if s.Error != "" {
		msg += ": " + auditlog.Printable(s.Error)
	}
	return fmt.Errorf("%s", msg)
}

// choice is one line of a list to pick from: what to type, and what runs.
func choice(s rpc.SessionInfo, e rpc.ExecInfo) string {
	name := s.Session
	if len(running(s)) > 1 {
		name = e.Exec
	}
	return fmt.Sprintf("  bottle-rpc attach %s   # %s, %s", name, auditlog.Printable(s.Agent), command(e))
}

// running lists the session's running execs with a terminal: what attach
// can show.
func running(s rpc.SessionInfo) []rpc.ExecInfo {
	var out []rpc.ExecInfo
	for _, e := range s.Execs {
		if e.Running && e.Tty {
			out = append(out, e)
		}
	}
	return out
}

func findExec(s rpc.SessionInfo, exec string) (rpc.ExecInfo, bool) {
	for _, e := range s.Execs {
		if e.Exec == exec {
			return e, true
		}
	}
	return rpc.ExecInfo{}, false
}

func exitNote(e rpc.ExecInfo) string {
	if e.Code != nil {
		return fmt.Sprintf(" (exit code %d)", *e.Code)
	}
	return ""
}

// command is an exec's command for a person: its first word, escaped.
func command(e rpc.ExecInfo) string {
	if len(e.Argv) == 0 {
		return "?"
	}
	return auditlog.Printable(e.Argv[0])
}
