package dnsguard

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestAddUnreachableRouteInAFreshNetworkNamespace runs the route change in
// a new network namespace of its own (a child process), so the test
// machine's routes are never touched. It needs root, as the tests here run.
func TestAddUnreachableRouteInAFreshNetworkNamespace(t *testing.T) {
	if os.Getenv("DNSGUARD_NETNS_CHILD") == "1" {
		runtime.LockOSThread()
		for range 2 { // twice: the second is a no-op, not an error
			if err := addUnreachableRoute(netip.MustParseAddr("127.0.0.11")); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command("ip", "route", "show", "table", "local").CombinedOutput()
		if err == nil && !strings.Contains(string(out), "unreachable 127.0.0.11") {
			t.Fatalf("local table:\n%s", out)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to make a network namespace (the test suite runs as root)")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestAddUnreachableRouteInAFreshNetworkNamespace$", "-test.v")
	cmd.Env = append(os.Environ(), "DNSGUARD_NETNS_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) || err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("child did not pass:\n%s", out)
	}
}
