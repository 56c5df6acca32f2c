package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/bottle-dev/bottle/dnsguard"
	"github.com/bottle-dev/bottle/egress"
)

// egressProxy reads its config from stdin (or --config), so the config,
// secrets included, never shows in the sidecar's container configuration.
// Control lines follow it on stdin.
func egressProxy(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("egress-proxy", flag.ExitOnError)
	config := fs.String("config", "-", "config file (JSON), - for stdin")
	blockDNS := fs.Bool("block-embedded-dns", false, "instead of serving, make Docker's embedded DNS unreachable in this network namespace and exit (needs CAP_NET_ADMIN)")
	fs.Parse(args)
	if *blockDNS {
		if err := dnsguard.Block(); err != nil {
			return fail("egress-proxy: %v", err)
		}
		// The server waits for this line, not for the exit, which the
		// engine reports about 100 ms later.
		fmt.Println(dnsguard.BlockedLine)
		return 0
	}
	// The config comes first on stdin, which then stays open as the
	// control channel (egress.Control lines from the server). With a
	// config file, all of stdin is the control channel.
	var (
		cfg     egress.Config
		control io.Reader = os.Stdin
		err     error
	)
	if *config == "-" {
		cfg, control, err = egress.ReadConfigStream(os.Stdin)
	} else {
		cfg, err = readConfigFile(*config)
	}
	if err != nil {
		return fail("egress-proxy: reading the config: %v", err)
	}
	if err := egress.Run(ctx, cfg, control, os.Stdout, os.Stderr); err != nil {
		return fail("egress-proxy: %v", err)
	}
	return 0
}

func readConfigFile(path string) (egress.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return egress.Config{}, err
	}
	defer f.Close()
	return egress.ReadConfig(f)
}
