package integration

import (
	"context"
	"testing"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/internal/upstreamnet"
)

// upstreamNetwork is where a test's upstream servers live for a session's
// bottle: a network of the test's own, bottle-SESSION-egress, that the
// bottle's sidecar joins (see upstreamnet for why). It carries the
// session's label, so bottle/close removes it after its containers.
// Calling it again is a no-op.
func upstreamNetwork(t testing.TB, session string) string {
	t.Helper()
	name := "bottle-" + session + "-egress"
	err := upstreamnet.Join(context.Background(), dockerClient(t), name,
		map[string]string{dockerbottle.LabelSession: session},
		dockerbottle.LabelSession+"="+session, dockerbottle.LabelRole+"=sidecar")
	if err != nil {
		t.Fatalf("bottle %s: %v", session, err)
	}
	return name
}
