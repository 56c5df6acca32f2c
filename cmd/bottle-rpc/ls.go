package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/bottle-dev/bottle/daemon"
	"github.com/bottle-dev/bottle/rpc"
	"github.com/bottle-dev/bottle/termclient"
)

// ls lists the daemon's bottles. It never starts a daemon: none running
// means no bottles.
func ls(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("ls", flag.ExitOnError)
	socket := fs.String("socket", daemon.DefaultSocket(), "the daemon's `SOCKET`")
	all := fs.Bool("all", false, "also list the closed bottles the daemon still remembers")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: bottle-rpc ls [--all] [--socket SOCKET]")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	conn, err := daemon.Dial(ctx, *socket, false)
	if noDaemon(err) {
		fmt.Println("no bottle daemon is running: no bottles")
		return 0
	}
	if err != nil {
		return fail("ls: %v", err)
	}
	sessions, err := termclient.List(ctx, conn)
	if err != nil {
		return fail("ls: %v", err)
	}
	if !*all {
		sessions = slices.DeleteFunc(sessions, func(s rpc.SessionInfo) bool { return s.State == "closed" })
	}
	termclient.PrintSessions(os.Stdout, sessions)
	return 0
}

// noDaemon reports whether a dial error means no daemon runs: no socket,
// or one a dead daemon left. Any other error (a daemon of another user, a
// folder with the wrong modes) is the user's to see.
func noDaemon(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
