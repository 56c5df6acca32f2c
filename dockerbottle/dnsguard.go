package dockerbottle

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// blockEmbeddedDNS cuts a runc agent off from Docker's embedded DNS server
// (127.0.0.11 in its network namespace). The engine puts that server in
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
func (e *Engine) blockEmbeddedDNS(ctx context.Context, session, agentID string) (err error) {
	img, err := e.sidecarImage(ctx)
	if err != nil {
		return err
	}
	pids := int64(16)
	cfg := &container.Config{
		Image:  img,
		User:   "0:0", // capabilities take effect for root only
		Cmd:    []string{"--block-embedded-dns"},
		Labels: e.owner.Labels(session, "dns-guard"),
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
		return fmt.Errorf("creating the DNS guard of the agent: %w", engineErr(err))
	}
	// Once the route is in place the helper's removal can go on while the
	// bottle is handed out; Close finds it by its label if it is not done.
	defer func() {
		rctx := context.WithoutCancel(ctx)
		if err != nil {
			e.removeContainer(rctx, resp.ID)
			return
		}
		go func() {
			if err := e.removeContainer(rctx, resp.ID); err != nil {
				e.log.Warn("removing the DNS guard of the agent", "session", session, "err", err)
			}
		}()
	}()
	if err := e.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting the DNS guard of the agent: %w", engineErr(err))
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	waitC, errC := e.cli.ContainerWait(wctx, resp.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case w := <-waitC:
		code = w.StatusCode
	case err := <-errC:
		return fmt.Errorf("waiting for the DNS guard of the agent: %w", engineErr(err))
	}
	if code != 0 {
		return fmt.Errorf("the DNS guard of the agent failed (exit %d): %s", code, e.containerOutput(ctx, resp.ID))
	}
	return nil
}

// containerOutput is what a stopped container wrote, for error messages.
func (e *Engine) containerOutput(ctx context.Context, id string) string {
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	defer rc.Close()
	var out bytes.Buffer
	stdcopy.StdCopy(&out, &out, rc)
	return strings.TrimSpace(out.String())
}
