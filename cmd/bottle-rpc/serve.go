package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/daemon"
	"github.com/bottle-dev/bottle/dockerbottle"
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
	fs.Parse(args)
	// A client that died must not kill the server with SIGPIPE on its next
	// write, before it has torn its bottles down: the write fails instead,
	// and serving ends the orderly way.
	signal.Ignore(syscall.SIGPIPE)
	if *remote != "" {
		if *window != 0 {
			return fail("serve: --window is the daemon's with --remote: pass it to `bottle-rpc daemon`")
		}
		return forward(ctx, *remote)
	}
	eng, err := openEngine(ctx)
	if err != nil {
		return fail("serve: %v", err)
	}
	defer eng.Close()
	srv := rpc.NewServer(eng, rpc.Options{Version: version, Window: *window, Logger: slog.Default(), AuditDir: auditlog.DefaultDir()})
	if err := srv.Serve(ctx, os.Stdin, os.Stdout); err != nil {
		slog.Error("serving", "err", err)
	}
	return srv.ExitCode()
}

// openEngine connects to the engine and removes the bottles whose server
// is gone, as a server does when it starts.
func openEngine(ctx context.Context) (*dockerbottle.Engine, error) {
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{SubnetPool: os.Getenv("BOTTLE_SUBNET_POOL")})
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
