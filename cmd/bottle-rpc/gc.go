package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/bottle-dev/bottle/dockerbottle"
)

func gc(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("gc", flag.ExitOnError)
	dryRun := fs.Bool("dry-run", false, "list what would be removed, remove nothing")
	fs.Parse(args)
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{})
	if err != nil {
		return fail("gc: %v", err)
	}
	defer eng.Close()
	reaped, err := eng.GC(ctx, *dryRun)
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	for _, r := range reaped {
		fmt.Printf("%s %s %s (bottle %s)\n", verb, r.Kind, r.Name, r.Session)
	}
	if len(reaped) == 0 {
		fmt.Println("no orphaned bottles")
	}
	if err != nil {
		return fail("gc: %v", err)
	}
	return 0
}
