package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// DefaultIdle is how long a daemon with no connection and nothing running
// waits before it exits.
const DefaultIdle = 15 * time.Minute

// Server is what the daemon serves each connection with (*rpc.Server).
type Server interface {
	// ServeConn serves one connection until it ends or ctx does.
	ServeConn(ctx context.Context, rwc io.ReadWriteCloser) error
	// Busy reports whether anything still runs that an idle exit would
	// end.
	Busy() bool
	// CloseAll tears down everything the server runs.
	CloseAll(ctx context.Context) error
}

// refusalTimeout bounds the write of the refusal to another user, who may
// not be reading.
const refusalTimeout = 5 * time.Second

// Serve accepts connections on ln and serves each of its own user's with
// srv, on its own goroutine; another user's gets one JSON-RPC error and is
// closed. It returns nil once idle has passed with no connection open and
// srv not Busy (idle <= 0 is DefaultIdle), or, when ctx ends, after it
// stopped accepting and srv.CloseAll returned; the connections still open
// then end after CloseAll, so their clients see the teardown. ln is closed
// on return. A connection that fails only ends itself.
func Serve(ctx context.Context, ln net.Listener, srv Server, idle time.Duration) error {
	if idle <= 0 {
		idle = DefaultIdle
	}
	log := slog.Default()
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()

	accepted := make(chan net.Conn)
	stopping := make(chan struct{})
	var accepting sync.WaitGroup
	accepting.Add(1)
	go func() {
		defer accepting.Done()
		acceptLoop(ln, accepted, stopping, log)
	}()

	var (
		handlers  sync.WaitGroup
		mu        sync.Mutex
		open      int
		idleSince = time.Now()
	)
	stop := func() {
		close(stopping)
		ln.Close()
		accepting.Wait()
	}
	// The idle check polls Busy, which announces no changes; polling at a
	// tenth of idle makes the exit at most that much late or early.
	tick := time.NewTicker(max(idle/10, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("daemon stopping: tearing down every session", "cause", context.Cause(ctx))
			stop()
			err := srv.CloseAll(context.WithoutCancel(ctx))
			cancelConns()
			handlers.Wait()
			if err != nil {
				return fmt.Errorf("tear down: %w", err)
			}
			return nil
		case c := <-accepted:
			mu.Lock()
			open++
			mu.Unlock()
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				serveConn(connCtx, c, srv, log)
				mu.Lock()
				if open--; open == 0 {
					idleSince = time.Now()
				}
				mu.Unlock()
			}()
		case now := <-tick.C:
			busy := srv.Busy()
			mu.Lock()
			if busy || open > 0 {
				idleSince = now
			}
			idleFor := now.Sub(idleSince)
			mu.Unlock()
			if idleFor >= idle {
				log.Info("daemon idle: exiting", "idle", idle)
				stop()
				handlers.Wait()
				return nil
			}
		}
	}
}

// acceptLoop hands each accepted connection to the serving loop until
// stopping closes. An accept error other than the listener's close (too
// many open files) is waited out, as net/http does, rather than ending a
// daemon whose sessions would die with it.
func acceptLoop(ln net.Listener, accepted chan<- net.Conn, stopping <-chan struct{}, log *slog.Logger) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Error("accepting a connection", "err", err, "retry in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-stopping:
				return
			}
		}
		backoff = 0
		select {
		case accepted <- c:
		case <-stopping:
			c.Close()
			return
		}
	}
}

// serveConn checks c's peer is this daemon's user, then serves it; c is
// closed on return.
func serveConn(ctx context.Context, c net.Conn, srv Server, log *slog.Logger) {
	defer c.Close()
	uid, err := peerUID(c)
	if err != nil {
		log.Warn("connection refused: unknown peer", "err", err)
		refuse(c, "the bottle daemon could not tell which user connected; run your own `bottle-rpc daemon`")
		return
	}
	if own := os.Geteuid(); uid != own {
		log.Warn("connection refused: another user", "peer_uid", uid, "uid", own)
		refuse(c, fmt.Sprintf("this bottle daemon belongs to uid %d and you are uid %d: run your own `bottle-rpc daemon` (or `bottle-rpc serve --remote=auto`), which listens on a socket of yours", own, uid))
		return
	}
	log.Debug("connection open")
	if err := srv.ServeConn(ctx, c); err != nil {
		log.Info("connection ended", "err", err)
		return
	}
	log.Debug("connection closed")
}

// refuse writes one JSON-RPC error frame (id null, Invalid Request) with
// msg, so a client sees why before the connection closes.
func refuse(c net.Conn, msg string) {
	type wireError struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	body, err := json.Marshal(struct {
		JSONRPC string    `json:"jsonrpc"`
		ID      any       `json:"id"`
		Error   wireError `json:"error"`
	}{"2.0", nil, wireError{-32600, msg}})
	if err != nil {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(refusalTimeout))
	_, _ = fmt.Fprintf(c, "Content-Length: %d\r\n\r\n%s", len(body), body)
}
