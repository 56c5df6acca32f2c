package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/daemon"
	"github.com/bottle-dev/bottle/manifest"
	"github.com/bottle-dev/bottle/rpc"
)

// runDaemon is the per-user daemon: one server whose sessions outlive the
// connections of `serve --remote`, on a unix socket of this user's only.
// It exits quietly when another daemon serves the socket, after --idle
// with no connection and no bottle, and on SIGTERM or SIGINT after it tore
// down every bottle.
func runDaemon(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("daemon", flag.ExitOnError)
	socket := fs.String("socket", daemon.DefaultSocket(), "unix socket to listen on")
	idle := fs.Duration("idle", daemon.DefaultIdle, "exit after this long with no connection and no bottle")
	scrollback := fs.Int("scrollback", 0, "output bytes kept per exec for attach's replay (default 1 MiB)")
	window := fs.Int("window", 0, "flow-control window per exec and connection in bytes (default 256 KiB)")
	pool := fs.Int("pool", 1, "bottles kept made ahead of time per kind of start, for warm starts; 0: none (a bottle's pool: wins)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return fail("daemon: unexpected argument %q", fs.Arg(0))
	}
	if *idle < 0 || *scrollback < 0 || *window < 0 {
		return fail("daemon: --idle, --scrollback and --window must not be negative")
	}
	if *pool < 0 || *pool > manifest.MaxPool {
		return fail("daemon: --pool must be 0 to %d", manifest.MaxPool)
	}
	// A client that vanished must not kill the daemon with SIGPIPE: the
	// write fails and only that connection ends.
	signal.Ignore(syscall.SIGPIPE)
	ln, err := daemon.Listen(*socket)
	if errors.Is(err, daemon.ErrRunning) {
		slog.Info("another daemon serves the socket: exiting", "socket", *socket)
		return 0
	}
	if err != nil {
		return fail("daemon: %v", err)
	}
	defer ln.Close()
	// The lock is held, so no other daemon runs: the bottles whose server
	// is gone, which openEngine removes, include a killed daemon's.
	eng, err := openEngine(ctx, *pool)
	if err != nil {
		return fail("daemon: %v", err)
	}
	defer eng.Close()
	// On SIGTERM and at the idle end alike: the pool is no bottle, and
	// outlives no daemon.
	defer drainPool(eng)
	srv := rpc.NewServer(eng, rpc.Options{Version: version, Window: *window, Scrollback: *scrollback, Logger: slog.Default(), AuditDir: auditlog.DefaultDir()})
	slog.Info("daemon listening", "socket", *socket, "pid", os.Getpid(), "idle", *idle)
	if err := daemon.Serve(ctx, ln, srv, *idle); err != nil {
		slog.Error("daemon", "err", err)
		return 1
	}
	return 0
}
