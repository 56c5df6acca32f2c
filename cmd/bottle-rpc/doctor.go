package main

import (
	"context"
	"fmt"
	"os"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/manifest"
)

// doctor checks what a bottle needs, one line each, and says how to fix
// what is missing. It exits 1 when a bottle cannot start.
func doctor(ctx context.Context, args []string) int {
	ok := true
	report := func(good bool, what, fix string) {
		mark := "ok  "
		if !good {
			mark = "FAIL"
			ok = false
		}
		fmt.Printf("%s %s\n", mark, what)
		if !good && fix != "" {
			fmt.Printf("     fix: %s\n", fix)
		}
	}
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{})
	if err != nil {
		report(false, "docker engine: "+err.Error(), "run scripts/setup.sh as root (installs docker.io and starts dockerd)")
		return 1
	}
	defer eng.Close()
	report(true, "docker engine answers", "")
	runsc, err := eng.HasRunsc(ctx)
	switch {
	case err != nil:
		report(false, "runtime probe: "+err.Error(), "")
	case runsc:
		report(true, "gVisor (runsc) is registered: bottles run under "+dockerbottle.RuntimeLabel(dockerbottle.RuntimeRunsc), "")
	default:
		fmt.Println("warn gVisor (runsc) is not registered: bottles run under runc")
		fmt.Println("     fix: run scripts/setup.sh without BOTTLE_NO_GVISOR")
	}
	missing, err := eng.MissingImages(ctx, manifest.Default())
	if err != nil {
		report(false, "images: "+err.Error(), "")
	}
	for _, m := range missing {
		report(false, m, "run scripts/setup.sh to build the offline images")
	}
	if err == nil && len(missing) == 0 {
		report(true, "base image and Claude Code build context are in place", "")
	}
	if err := eng.CheckProxyBinary(); err != nil {
		report(false, err.Error(), "build with: CGO_ENABLED=0 go build ./cmd/bottle-rpc")
	} else {
		report(true, "this binary can serve as the egress sidecar", "")
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "bottle-rpc doctor: some checks failed")
		return 1
	}
	return 0
}
