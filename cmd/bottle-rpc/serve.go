package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/daemon"
	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/manifest"
	"github.com/bottle-dev/bottle/rpc"
)

// serve is the stdio JSON-RPC server. On start-up it reaps bottles whose
// server is gone; on end of input, exit, SIGTERM or SIGINT it tears down
// every session before the process exits. With --remote it serves nothing
// itself: it forwards stdio to the daemon, whose bottles outlive it.
func serve(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	window := fs.Int("window", 0, "flow-control window per exec in bytes (default 256 KiB)")
	remote := fs.String("remote", "", "forward to the daemon: auto (its default socket, started when none answers) or a socket PATH (connect only)")
	pool := fs.Int("pool", 0, "bottles kept made ahead of time per kind of start, for warm starts (a bottle's pool: wins)")
	fs.Parse(args)
	if *pool < 0 || *pool > manifest.MaxPool {
		return fail("serve: --pool must be 0 to %d", manifest.MaxPool)
	}
	// A client that died must not kill the server with SIGPIPE on its next
	// write, before it has torn its bottles down: the write fails instead,
	// and serving ends the orderly way.
	signal.Ignore(syscall.SIGPIPE)
	if *remote != "" {
		if *window != 0 || *pool != 0 {
			return fail("serve: --window and --pool are the daemon's with --remote: pass them to `bottle-rpc daemon`")
		}
		return forward(ctx, *remote)
	}
	eng, err := openEngine(ctx, *pool)
	if err != nil {
		return fail("serve: %v", err)
	}
	defer eng.Close()
	defer drainPool(eng)
	srv := rpc.NewServer(eng, rpc.Options{Version: version, Window: *window, Logger: slog.Default(), AuditDir: auditlog.DefaultDir()})
	if err := srv.Serve(ctx, os.Stdin, os.Stdout); err != nil {
		slog.Error("serving", "err", err)
	}
	return srv.ExitCode()
}

// openEngine connects to the engine and removes the bottles whose server
// is gone, as a server does when it starts.
func openEngine(ctx context.Context, pool int) (*dockerbottle.Engine, error) {
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{SubnetPool: os.Getenv("BOTTLE_SUBNET_POOL"), Pool: pool})
	if err != nil {
		return nil, err
	}
	if reaped, err := eng.GC(ctx, false); err != nil {
		slog.Warn("removing orphaned bottles", "err", err)
	} else if len(reaped) > 0 {
		slog.Info("removed orphaned bottle resources", "count", len(reaped))
	}
	return eng, nil
}

// drainPool removes the bottles made ahead of time as the server ends; a
// server killed before leaves them to gc, as any bottle of a dead server.
func drainPool(eng *dockerbottle.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := eng.DrainPool(ctx); err != nil {
		slog.Warn("removing the warm pool's bottles", "err", err)
	}
}

// forward connects stdio to the daemon on remote ("auto": the default
// socket, starting the daemon when none answers; else a socket path, only
// connected to) until either side ends.
func forward(ctx context.Context, remote string) int {
	socket, auto := remote, false
	if remote == "auto" {
		socket, auto = daemon.DefaultSocket(), true
	}
	conn, err := daemon.Dial(ctx, socket, auto)
	if err != nil {
		return fail("serve --remote=%s: %v", remote, err)
	}
	if err := daemon.Forward(ctx, conn, os.Stdin, os.Stdout); err != nil {
		return fail("serve --remote=%s: %v", remote, err)
	}
	return 0
}
