package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/bottle-dev/bottle/auditlog"
	"github.com/bottle-dev/bottle/daemon"
	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/rpc"
	"github.com/bottle-dev/bottle/termclient"
)

// run is the terminal client: the server runs in this process over a pipe
// pair, and the client speaks the same protocol an editor does.
func run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	manifestPath := fs.String("manifest", "", "bottle.yaml (default: ./bottle.yaml if present, else the built-in manifest)")
	cwd := fs.String("cwd", "", "folder copied into the agent's workspace (with --git: default the current folder)")
	copyGit := fs.Bool("git", false, "also copy the folder's .git; when the agent exits, its commits and uncommitted work are fetched into that repository as branch bottle/AGENT/SESSION (nothing is checked out)")
	noFetch := fs.Bool("no-fetch", false, "with --git: fetch nothing when the agent exits")
	yes := fs.Bool("yes", false, "start without asking")
	var allow entries
	fs.Var(&allow, "allow", "add an egress.allow `ENTRY` (host, host:port, host:*, *.domain) for this session; repeatable")
	persist := fs.Bool("persist", false, "run the bottle in the per-user daemon (started when none runs): it outlives this terminal; the detach keys leave it running, bottle-rpc attach comes back")
	keySpec := fs.String("detach-keys", termclient.DefaultDetachKeys, "with --persist: the `KEYS` that detach: ctrl-X or one character, comma-separated")
	socket := fs.String("socket", daemon.DefaultSocket(), "with --persist: the daemon's `SOCKET`")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: bottle-rpc run AGENT [--manifest F] [--cwd D] [--git [--no-fetch]] [--yes] [--allow ENTRY]... [--persist [--detach-keys KEYS]] [-- COMMAND...]")
		fs.PrintDefaults()
	}
	agent := "claude"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		agent, args = args[0], args[1:]
	}
	fs.Parse(args)
	keys, err := termclient.ParseDetachKeys(*keySpec)
	if err != nil {
		return fail("run: --detach-keys: %v", err)
	}
	if *manifestPath == "" {
		if _, err := os.Stat("bottle.yaml"); err == nil {
			*manifestPath = "bottle.yaml"
		}
	}
	if *manifestPath != "" {
		abs, err := filepath.Abs(*manifestPath)
		if err != nil {
			return fail("run: %v", err)
		}
		*manifestPath = abs
	}
	// The folder whose .git goes in is where the work comes home to.
	if *copyGit && *cwd == "" {
		*cwd = "."
	}
	if *cwd != "" {
		abs, err := filepath.Abs(*cwd)
		if err != nil {
			return fail("run: %v", err)
		}
		*cwd = abs
	}

	opts := termclient.Options{
		Agent: agent, Manifest: *manifestPath, Cwd: *cwd, CopyGit: *copyGit, NoFetch: *noFetch, Yes: *yes, Allow: allow, Argv: fs.Args(), Persist: *persist,
		Terminal: termclient.Terminal{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, DetachKeys: keys},
	}
	if *persist {
		return runInDaemon(ctx, *socket, opts)
	}

	// The server's log would tear through the agent's screen.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("BOTTLE_DEBUG") != "" {
		quiet = slog.Default()
	}
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{SubnetPool: os.Getenv("BOTTLE_SUBNET_POOL"), Logger: quiet})
	if err != nil {
		return fail("run: %v", err)
	}
	defer eng.Close()
	srv := rpc.NewServer(eng, rpc.Options{Version: version, Logger: quiet, AuditDir: auditlog.DefaultDir()})
	clientR, serverW := io.Pipe()
	serverR, clientW := io.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(context.WithoutCancel(ctx), serverR, serverW)
		serverW.Close()
	}()
	code, err := termclient.Run(ctx, pipeConn{clientR, clientW}, opts)
	clientW.Close()
	<-served
	if err != nil {
		return fail("run: %v", err)
	}
	return code
}

// runInDaemon runs the bottle in the per-user daemon, which keeps it when
// this client goes.
func runInDaemon(ctx context.Context, socket string, opts termclient.Options) int {
	conn, err := daemon.Dial(ctx, socket, true)
	if err != nil {
		return fail("run: %v", err)
	}
	code, err := termclient.Run(ctx, conn, opts)
	if err != nil {
		return fail("run: %v", err)
	}
	return code
}

// entries collects a repeated flag's values.
type entries []string

func (e *entries) String() string     { return strings.Join(*e, ",") }
func (e *entries) Set(v string) error { *e = append(*e, v); return nil }

type pipeConn struct {
	io.Reader
	io.WriteCloser
}
