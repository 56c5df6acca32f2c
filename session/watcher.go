package session

import (
	"context"

	"github.com/bottle-dev/bottle/egress"
)

// Watcher is one client of the registry, a connection of the server: it is
// sent the output of the execs it subscribed to, and the egress records,
// questions and state changes of the sessions attached to it. Its methods
// must not block, except Ask; each exec's Output and Exit calls to one
// watcher come from one goroutine, in order.
type Watcher interface {
	// Output delivers one chunk of an exec's output; data is only valid
	// during the call.
	Output(exec string, data []byte, f OutputFlags)
	// Exit follows the exec's last Output to this watcher. err says why
	// the exit code is unknown (code is then -1).
	Exit(exec string, code int, err error)
	// Egress delivers one decision of a session's egress proxy; its
	// Session is the session's id.
	Egress(rec egress.Record)
	// State tells that a session changed state; err is why it failed.
	State(session string, st State, err error)
	// Ask puts the question of an "ask" record to the user and returns
	// AllowOnce, AllowSession or Deny, and asked false when this watcher
	// cannot ask (its client lacks the capability): the next attached
	// watcher is asked then. It may block; ctx ends when the bottle's ask
	// timeout passes or the session closes.
	Ask(ctx context.Context, q egress.Record) (decision string, asked bool)
}

// OutputFlags say where a chunk of output stands for its watcher.
type OutputFlags struct {
	// Replay: the bytes were written before the watcher attached.
	Replay bool
	// Resync: the watcher fell further behind than the scrollback, and
	// bytes before these were lost to it.
	Resync bool
}
