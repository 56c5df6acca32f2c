package dockerbottle_test

import (
	"context"
	"testing"

	"github.com/bottle-dev/bottle/dockerbottle"
	"github.com/bottle-dev/bottle/internal/upstreamnet"
)

// upstreamNetwork is where a test's upstream servers live for the bottle
// whose resources carry label (its session, or its pool id when it came
// from the warm pool): a network of the test's own, bottle-LABEL-egress,
// that the bottle's sidecar joins (see upstreamnet for why). It carries
// the label, so the bottle's Close removes it after its containers.
// Calling it again is a no-op.
func upstreamNetwork(t testing.TB, label string) string {
	t.Helper()
	label = bottleLabel(label)
	name := "bottle-" + label + "-egress"
	err := upstreamnet.Join(context.Background(), engine.Client(), name,
		map[string]string{dockerbottle.LabelSession: label, labelTest: "1"},
		dockerbottle.LabelSession+"="+label, dockerbottle.LabelRole+"=sidecar")
	if err != nil {
		t.Fatalf("bottle %s: %v", label, err)
	}
	return name
}
