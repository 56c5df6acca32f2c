package dockerbottle_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
)

// TestEscape tries every way out of a bottle that an attacker in the agent
// would, as the agent user, under runc and under gVisor. Each attempt must
// fail; where the proxy was involved, its audit must hold the refusal. Each
// case that could pass by accident (a dead upstream, a name that does not
// exist) has a control that shows the target is there.
func TestEscape(t *testing.T) {
	needEngine(t)
	t.Parallel()
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			audit := &auditLog{}
			m := imageManifest(t, probeAgentImage(t), rt, `
allow: [upstream.test, secure.test, "upstream.test:7", private.test, "localhost:*", "metadata.test"]
trusted: [upstream.test, secure.test]
`, nil)
			bt := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh", OnEgress: audit.add})
			session := bt.Info().Session
			internalNet, egressNet := "bottle-"+bottleLabel(session)+"-internal", "bottle-"+bottleLabel(session)+"-egress"
			upstreamIP := startNetprobe(t, session, "upstream.test")
			startNetprobe(t, session, "secure.test")
			startNetprobe(t, session, "denied.test")
			startNetprobe(t, session, "private.test")
			const probe = "netprobe"
			proxy := bt.Info().ProxyAddr
			sidecar := sidecarOf(t, session)
			host := listenOnHost(t)

			// Controls: through the proxy the agent reaches what the allowlist
			// names, so the upstreams are up and the failures below are the
			// bottle's doing.
			if out := mustRun(t, bt, "curl", "-sS", "--max-time", "20", "http://upstream.test/control"); out != "netprobe: GET /control\n" {
				t.Fatalf("control through the proxy: %q", out)
			}
			if out := mustRun(t, bt, "curl", "-sSk", "--max-time", "20", "https://secure.test/control"); out != "netprobe: GET /control\n" {
				t.Fatalf("control over CONNECT: %q", out)
			}

			t.Run("direct TCP to an upstream on the egress network", func(t *testing.T) {
				for _, port := range []string{"80", "443", "7"} {
					mustFail(t, bt, probe, "tcp", net.JoinHostPort(upstreamIP, port))
				}
				mustFail(t, bt, "curl", "-sS", "--noproxy", "*", "--max-time", "5", "http://"+upstreamIP+"/")
				// Through the proxy, an address the allowlist does not name
				// is refused like any other target.
				out := mustRun(t, bt, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "http://"+upstreamIP+"/")
				if out != "403" {
					t.Errorf("proxied request to %s: %s, want 403", upstreamIP, out)
				}
				audit.refusal(t, "GET", upstreamIP, 80, "default-deny")
			})

			t.Run("the host through the network gateways", func(t *testing.T) {
				gateways := []string{networkGateway(t, internalNet), networkGateway(t, egressNet), networkGateway(t, "bridge")}
				for _, gw := range gateways {
					mustFail(t, bt, probe, "tcp", net.JoinHostPort(gw, host.port))
					mustFail(t, bt, probe, "udp", net.JoinHostPort(gw, host.port))
				}
				if ll := bridgeLinkLocal(t, internalNet); ll != "" {
					mustFail(t, bt, probe, "tcp", "["+ll+"%eth0]:"+host.port)
					mustFail(t, bt, probe, "udp", "["+ll+"%eth0]:"+host.port)
				} else {
					t.Log("the internal bridge has no IPv6 link-local address on this host: nothing to try there")
				}
				gw := gateways[0]
				mustFail(t, bt, "curl", "-sS", "--max-time", "20", "-f", "http://"+net.JoinHostPort(gw, host.port)+"/")
				audit.refusal(t, "GET", gw, atoi(t, host.port), "default-deny")
				if n, u := host.tcp.Load(), host.udp.Load(); n != 0 || u != 0 {
					t.Errorf("the host listener was reached: %d TCP connections, %d UDP datagrams", n, u)
				}
				// Control: the listener is reachable from the host itself.
				if c, err := net.DialTimeout("tcp", net.JoinHostPort(gateways[1], host.port), 2*time.Second); err != nil {
					t.Errorf("control: the host listener is not reachable on %s from the host: %v", gateways[1], err)
				} else {
					c.Close()
				}
			})

			t.Run("the cloud metadata address", func(t *testing.T) {
				mustFail(t, bt, probe, "tcp", "169.254.169.254:80")
				mustFail(t, bt, "curl", "-sS", "--noproxy", "*", "--max-time", "5", "http://169.254.169.254/latest/meta-data/")
				out := mustRun(t, bt, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "http://169.254.169.254/latest/meta-data/")
				if out != "403" {
					t.Errorf("proxied request to the metadata address: %s, want 403", out)
				}
				audit.refusal(t, "GET", "169.254.169.254", 80, "default-deny")
			})

			t.Run("another bottle's agent", func(t *testing.T) {
				other := startBottle(t, backend.StartSpec{Manifest: m, Agent: "sh"})
				listener, err := other.Exec(context.Background(), backend.ExecSpec{Argv: []string{"nc", "-lk", "8080"}})
				if err != nil {
					t.Fatal(err)
				}
				defer listener.Close()
				// Control: the listener answers inside the other bottle.
				var up bool
				for range 50 {
					if _, code := run(t, other, "bash", "-c", "echo > /dev/tcp/127.0.0.1/8080"); code == 0 {
						up = true
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if !up {
					t.Fatal("control: the other bottle's listener never came up")
				}
				otherIP := inspect(t, other.Info().ContainerID).NetworkSettings.Networks["bottle-"+bottleLabel(other.Info().Session)+"-internal"].IPAddress
				otherSidecar := sidecarOf(t, other.Info().Session)
				mustFail(t, bt, probe, "tcp", net.JoinHostPort(otherIP, "8080"))
				mustFail(t, bt, probe, "tcp", net.JoinHostPort(otherSidecar.InternalIP, strconv.Itoa(3128)))
				mustFail(t, bt, "curl", "-sS", "--max-time", "20", "-f", "http://"+net.JoinHostPort(otherIP, "8080")+"/")
				audit.refusal(t, "GET", otherIP, 8080, "default-deny")
				mustFail(t, bt, probe, "tls", proxy, net.JoinHostPort(otherIP, "8080"), "x.test")
				audit.refusal(t, "CONNECT", otherIP, 8080, "default-deny")
			})

			t.Run("DNS", func(t *testing.T) {
				names := []string{"upstream.test", sidecar.Name, sidecar.ID[:12], sidecar.Hostname, "deb.debian.org"}
				// Control: a container on the bottle's networks gets answers for
				// these names from the engine's DNS; the agent must get none.
				out, code := runNetprobe(t, session, []string{internalNet, egressNet}, "dns", sidecar.Name, "127.0.0.11:53")
				if code != 0 {
					t.Errorf("control: the sidecar's name does not resolve on its networks: %s", out)
				}
				if out, code := runNetprobe(t, session, []string{egressNet}, "dns", "upstream.test", "127.0.0.11:53"); code != 0 {
					t.Errorf("control: upstream.test does not resolve on the egress network: %s", out)
				}
				for i, name := range names {
					if out, code := run(t, bt, "getent", "hosts", name); code == 0 {
						t.Errorf("%s resolved in the agent: %s", name, out)
					}
					// An attacker ignores resolv.conf and asks the engine's DNS
					// directly, and any other address that might answer.
					servers := []string{"127.0.0.11:53"}
					if i < 2 {
						servers = append(servers, net.JoinHostPort(sidecar.InternalIP, "53"), net.JoinHostPort(upstreamIP, "53"))
					}
					for _, server := range servers {
						if out, code := run(t, bt, probe, "dns", name, server); code == 0 {
							t.Errorf("%s resolved in the agent through %s: %s", name, server, out)
						}
					}
				}
				if out, code := run(t, bt, "getent", "hosts", sidecar.InternalIP); code == 0 {
					t.Errorf("reverse lookup of the sidecar's address answered: %s", out)
				}
			})

			t.Run("UDP and IPv6", func(t *testing.T) {
				// Control: the upstream echoes UDP to a container on its network.
				if out, code := runNetprobe(t, session, []string{egressNet}, "udp", net.JoinHostPort(upstreamIP, "7")); code != 0 {
					t.Errorf("control: the upstream's UDP echo does not answer: %s", out)
				}
				mustFail(t, bt, probe, "udp", net.JoinHostPort(upstreamIP, "7"))
				mustFail(t, bt, probe, "udp", net.JoinHostPort(sidecar.InternalIP, "7"))
				out := mustRun(t, bt, probe, "addrs")
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					_, addr, _ := strings.Cut(line, " ")
					if strings.Contains(addr, ":") && !strings.HasPrefix(addr, "::1/") {
						t.Errorf("the agent has an IPv6 address: %s", line)
					}
				}
				for _, target := range []string{"[fe80::1%eth0]:80", "[fd00::1]:80", "[::ffff:" + upstreamIP + "]:80", "[64:ff9b::" + upstreamIP + "]:80"} {
					mustFail(t, bt, probe, "tcp", target)
				}
			})

			t.Run("through the proxy", func(t *testing.T) {
				t.Run("a host not on the allowlist over plain HTTP", func(t *testing.T) {
					out := mustRun(t, bt, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", "http://denied.test/")
					if out != "403" {
						t.Errorf("status %s, want 403", out)
					}
					audit.refusal(t, "GET", "denied.test", 80, "default-deny")
				})
				t.Run("a host not on the allowlist over CONNECT", func(t *testing.T) {
					mustFail(t, bt, "curl", "-sSk", "--max-time", "20", "https://denied.test/")
					audit.refusal(t, "CONNECT", "denied.test", 443, "default-deny")
				})
				t.Run("a ClientHello naming another host than the tunnel's", func(t *testing.T) {
					mustRun(t, bt, probe, "tls", proxy, "secure.test:443", "secure.test") // control
					mustFail(t, bt, probe, "tls", proxy, "secure.test:443", "denied.test")
					r := audit.refusal(t, "CONNECT", "secure.test", 443, "sni-mismatch")
					if !strings.Contains(r.Reason, "names denied.test, not secure.test") {
						t.Errorf("reason %q", r.Reason)
					}
				})
				t.Run("a name that resolves to a private address", func(t *testing.T) {
					out := mustRun(t, bt, "curl", "-sS", "--max-time", "20", "http://private.test/")
					if !strings.Contains(out, "private.test resolves to private address") {
						t.Errorf("got %q", out)
					}
					audit.refusal(t, "GET", "private.test", 80, "ssrf-guard")
					mustFail(t, bt, "curl", "-sSk", "--max-time", "20", "https://private.test/")
					audit.refusal(t, "CONNECT", "private.test", 443, "ssrf-guard")
				})
				t.Run("a name that resolves to loopback", func(t *testing.T) {
					// NO_PROXY covers localhost, so ask the proxy explicitly.
					mustFail(t, bt, "curl", "-sS", "--max-time", "20", "-f", "--noproxy", "", "-x", "http://"+proxy, "http://localhost:3128/")
					audit.refusal(t, "GET", "localhost", 3128, "ssrf-guard")
				})
				t.Run("an allowlisted name that does not resolve", func(t *testing.T) {
					mustFail(t, bt, "curl", "-sS", "--max-time", "20", "-f", "http://metadata.test/")
					audit.waitFor(t, func(r egress.Record) bool {
						return r.Host == "metadata.test" && r.Event == "close" && r.Reason != ""
					})
				})
			})
		})
	}
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
