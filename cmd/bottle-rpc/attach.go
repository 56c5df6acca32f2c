package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/bottle-dev/bottle/daemon"
	"github.com/bottle-dev/bottle/termclient"
)

// attach puts this terminal on a running process of a bottle the daemon
// keeps. It never starts a daemon: a new one would have no bottles.
func attach(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("attach", flag.ExitOnError)
	socket := fs.String("socket", daemon.DefaultSocket(), "the daemon's `SOCKET`")
	keySpec := fs.String("detach-keys", termclient.DefaultDetachKeys, "the `KEYS` that detach, leaving the bottle running: ctrl-X or one character, comma-separated")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: bottle-rpc attach [SESSION | EXEC] [--detach-keys KEYS] [--socket SOCKET]")
		fmt.Fprintln(os.Stderr, "No SESSION: the only persistent bottle with a running terminal.")
		fs.PrintDefaults()
	}
	var target string
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		target, args = args[0], args[1:]
	}
	fs.Parse(args)
	if fs.NArg() > 1 || fs.NArg() == 1 && target != "" {
		fs.Usage()
		return 2
	}
	if fs.NArg() == 1 {
		target = fs.Arg(0)
	}
	keys, err := termclient.ParseDetachKeys(*keySpec)
	if err != nil {
		return fail("attach: --detach-keys: %v", err)
	}
	conn, err := daemon.Dial(ctx, *socket, false)
	if noDaemon(err) {
		return fail("attach: no bottle daemon is running, so no bottle to attach to (bottle-rpc run --persist starts one)")
	}
	if err != nil {
		return fail("attach: %v", err)
	}
	code, err := termclient.Attach(ctx, conn, target, termclient.Terminal{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, DetachKeys: keys})
	if err != nil {
		return fail("attach: %v", err)
	}
	return code
}
