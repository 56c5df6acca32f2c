package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/dockerhost"
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
	if !reportEngine(ctx, report) {
		return 1
	}
	eng, err := dockerbottle.New(ctx, dockerbottle.Options{})
	if err != nil {
		report(false, "docker engine: "+err.Error(), "run scripts/setup.sh as root (installs docker.io and starts dockerd)")
		return 1
	}
	defer eng.Close()
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

// reportEngine says which engine the environment names, how it is reached
// (local socket, tcp+TLS, ssh), its version and its runtimes, and whether
// it answers.
func reportEngine(ctx context.Context, report func(good bool, what, fix string)) bool {
	cli, target, err := dockerhost.Connect(ctx, os.Getenv)
	if err != nil {
		report(false, "docker engine: "+err.Error(), "")
		return false
	}
	defer cli.Close()
	fix := "run scripts/setup.sh as root (installs docker.io and starts dockerd)"
	if target.Name != dockerhost.Local {
		fix = "check that the engine at " + target.Name + " runs, or unset DOCKER_HOST to use this machine's engine"
	}
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		report(false, fmt.Sprintf("docker engine %s (%s): %v", target.Name, target.Transport, err), fix)
		return false
	}
	info, err := cli.Info(ctx)
	if err != nil {
		report(false, fmt.Sprintf("docker engine %s (%s): %v", target.Name, target.Transport, err), fix)
		return false
	}
	runtimes := slices.Sorted(maps.Keys(info.Runtimes))
	report(true, fmt.Sprintf("docker engine %s answers over %s: Docker %s (API %s) on %s, runtimes %s (default %s)",
		target.Name, target.Transport, v.Version, v.APIVersion, info.Name, strings.Join(runtimes, ", "), info.DefaultRuntime), "")
	return true
}
