package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/bottle-dev/bottle/dnsguard"
	"github.com/bottle-dev/bottle/egress"
)

// egressProxy reads its config from stdin (or --config), so the config,
// secrets included, never shows in the sidecar's container configuration.
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
	in := os.Stdin
	if *config != "-" {
		f, err := os.Open(*config)
		if err != nil {
			return fail("egress-proxy: %v", err)
		}
		defer f.Close()
		in = f
	}
	cfg, err := egress.ReadConfig(in)
	if err != nil {
		return fail("egress-proxy: reading the config: %v", err)
	}
	if err := egress.Run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		return fail("egress-proxy: %v", err)
	}
	return 0
}
