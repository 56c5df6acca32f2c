// Command bottle-rpc runs AI coding agents in Docker bottles. Its default
// mode is a JSON-RPC server on stdio; see protocol.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: bottle-rpc [COMMAND] [FLAGS]

Commands:
  serve          JSON-RPC server on stdin/stdout (the default; see protocol.md);
                 --remote=auto forwards to the per-user daemon, starting it
  daemon         the per-user daemon: bottles that outlive their client's connection
  run AGENT      start a bottle and run its agent in this terminal
                 (--persist: in the daemon; Ctrl-P Ctrl-Q detaches, leaving it running)
  ls             the daemon's bottles
  attach [SESSION]
                 put this terminal back on a bottle's running process, its screen first
  gc             remove bottles whose server is gone (--dry-run lists them)
  audit SESSION  a bottle's egress decisions, as the audit kept them (no SESSION: list)
  doctor         say what this machine lacks to run bottles, and how to fix it
  egress-proxy   the egress sidecar's entrypoint (reads its config on stdin)
  version        print the version

Run "bottle-rpc COMMAND -h" for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, args := "serve", os.Args[1:]
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] != "" && args[0][0] != '-') {
		cmd, args = args[0], args[1:]
	}
	var code int
	switch cmd {
	case "serve":
		code = serve(ctx, args)
	case "daemon":
		code = runDaemon(ctx, args)
	case "run":
		code = run(ctx, args)
	case "ls":
		code = ls(ctx, args)
	case "attach":
		code = attach(ctx, args)
	case "gc":
		code = gc(ctx, args)
	case "audit":
		code = audit(ctx, args)
	case "doctor":
		code = doctor(ctx, args)
	case "egress-proxy":
		code = egressProxy(ctx, args)
	case "version":
		fmt.Println("bottle-rpc", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "bottle-rpc: unknown command %q\n\n%s", cmd, usage)
		code = 2
	}
	os.Exit(code)
}

func logLevel() slog.Level {
	if os.Getenv("BOTTLE_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "bottle-rpc: "+format+"\n", args...)
	return 1
}
