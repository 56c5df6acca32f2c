package dockerbottle

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/bottle-dev/bottle/dnsguard"
)

// createDNSGuard makes the helper that cuts a runc agent off from Docker's
// embedded DNS server (127.0.0.11 in its network namespace). The engine puts that server in
// every container on a user-defined network and offers no way to leave it
// out (Docker 20.10): it answers the names of the containers on the
// network, the sidecar's among them (by name, short id and reverse lookup),
// and on internal networks it may forward other names out
// (CVE-2024-29018). A resolv.conf of our own would only hide it from libc;
// a process that sends its own packets would still find it.
//
// So a one-shot helper joins the agent's network namespace, from the
// sidecar image (our own static binary, nothing else), as root with only
// CAP_NET_ADMIN, and adds an "unreachable" route for 127.0.0.11; then it
// exits, before the agent's first process runs, and is removed. Under
// gVisor the embedded server does not answer at all and gVisor keeps its
// own routes, so the helper is not needed there. It works against a remote
// engine too: it needs nothing but the Engine API.
//
// The helper is created next to the agent container and started once the
// agent runs; Start waits for the line it prints when the route is in
// place rather than for its exit, which the engine reports about 100 ms
// later.
func (e *Engine) createDNSGuard(ctx context.Context, session, agentID, img string) (string, error) {
	pids := int64(16)
	cfg := &container.Config{
		Image:        img,
		User:         "0:0", // capabilities take effect for root only
		Cmd:          []string{"--block-embedded-dns"},
		Labels:       e.owner.Labels(session, "dns-guard"),
		AttachStdout: true,
		AttachStderr: true,
	}
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode("container:" + agentID),
		Runtime:        RuntimeRunc,
		CapDrop:        []string{"ALL"},
		CapAdd:         []string{"NET_ADMIN"},
		SecurityOpt:    []string{"no-new-privileges:true"},
		ReadonlyRootfs: true,
		Resources:      container.Resources{Memory: 32 << 20, PidsLimit: &pids},
	}
	resp, err := e.cli.ContainerCreate(ctx, cfg, host, nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("creating the DNS guard of the agent: %w", engineErr(err))
	}
	return resp.ID, nil
}

// runDNSGuard starts the helper made by createDNSGuard once the agent
// container runs, and returns when the route is in place. Its removal goes
// on while the bottle is handed out; Close finds it by its label if that
// is not done yet.
func (e *Engine) runDNSGuard(ctx context.Context, session, id string) (err error) {
	rctx := context.WithoutCancel(ctx)
	defer func() {
		if err != nil {
			e.removeContainer(rctx, id)
			return
		}
		go func() {
			if err := e.removeContainer(rctx, id); err != nil {
				e.log.Warn("removing the DNS guard of the agent", "session", session, "err", err)
			}
		}()
	}()
	hj, err := e.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("attaching to the DNS guard of the agent: %w", engineErr(err))
	}
	defer hj.Close()
	out := demux(hj.Reader)
	blocked := make(chan error, 1)
	go func() {
		var said []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == dnsguard.BlockedLine {
				blocked <- nil
				return
			}
			said = append(said, sc.Text())
		}
		blocked <- fmt.Errorf("the DNS guard of the agent stopped before blocking the embedded DNS: %s", strings.Join(said, "; "))
	}()
	if err := e.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting the DNS guard of the agent: %w", engineErr(err))
	}
	select {
	case err := <-blocked:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("the DNS guard of the agent did not block the embedded DNS within 30 s; is the engine overloaded?")
	}
}
