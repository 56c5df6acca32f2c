package dockerhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	certs := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(certs, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	tests := []struct {
		name          string
		env           map[string]string
		wantName      string
		wantTransport Transport
		wantErr       string // a part of the error; "" for none
	}{
		{"unset is this machine's socket", nil, Local, Socket, ""},
		{"the default socket named", map[string]string{"DOCKER_HOST": "unix:///var/run/docker.sock"}, Local, Socket, ""},
		{"another socket", map[string]string{"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, "unix:///run/user/1000/docker.sock", Socket, ""},
		{"a relative socket", map[string]string{"DOCKER_HOST": "unix://docker.sock"}, "", "", "absolute path"},
		{"tcp with TLS", map[string]string{"DOCKER_HOST": "tcp://build.example:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": certs}, "tcp://build.example:2376", TLS, ""},
		{"tcp with a cert path only is TLS", map[string]string{"DOCKER_HOST": "tcp://build.example:2376", "DOCKER_CERT_PATH": certs}, "tcp://build.example:2376", TLS, ""},
		{"TLS without its files", map[string]string{"DOCKER_HOST": "tcp://build.example:2376", "DOCKER_TLS_VERIFY": "1", "HOME": home}, "", "", "ca.pem, cert.pem and key.pem"},
		{"plain tcp to another machine", map[string]string{"DOCKER_HOST": "tcp://build.example:2375"}, "", "", "in the clear"},
		{"plain tcp to loopback", map[string]string{"DOCKER_HOST": "tcp://127.0.0.1:2375"}, "tcp://127.0.0.1:2375", TCP, ""},
		{"tcp without a port", map[string]string{"DOCKER_HOST": "tcp://build.example"}, "", "", "HOST:PORT"},
		{"tcp with credentials", map[string]string{"DOCKER_HOST": "tcp://u:p@127.0.0.1:2375"}, "", "", "nothing else"},
		{"ssh", map[string]string{"DOCKER_HOST": "ssh://root@build.example", "HOME": home}, "ssh://root@build.example", SSH, ""},
		{"ssh with a port and a socket", map[string]string{"DOCKER_HOST": "ssh://me@127.0.0.1:2222/run/user/1000/docker.sock", "HOME": home}, "ssh://me@127.0.0.1:2222/run/user/1000/docker.sock", SSH, ""},
		{"ssh with a password", map[string]string{"DOCKER_HOST": "ssh://root:hunter2@build.example", "HOME": home}, "", "", "password"},
		{"another scheme", map[string]string{"DOCKER_HOST": "npipe:////./pipe/docker_engine"}, "", "", "not npipe://"},
		{"no scheme", map[string]string{"DOCKER_HOST": "build.example:2376"}, "", "", "want unix:///PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(func(k string) string { return tt.env[k] })
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse: %v, want an error with %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error shows the password: %v", err)
				}
			case err != nil:
				t.Fatalf("Parse: %v", err)
			case got.Name != tt.wantName || got.Transport != tt.wantTransport:
				t.Errorf("Parse = %q over %q, want %q over %q", got.Name, got.Transport, tt.wantName, tt.wantTransport)
			}
		})
	}
}

func TestParseSSHDefaults(t *testing.T) {
	home := t.TempDir()
	env := map[string]string{"DOCKER_HOST": "ssh://root@build.example", "HOME": home, "SSH_AUTH_SOCK": "/tmp/agent.sock"}
	got, err := Parse(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s := got.ssh
	if s.addr != "build.example:22" || s.user != "root" || s.socket != DefaultSocket || s.agentSock != "/tmp/agent.sock" ||
		s.knownHosts != filepath.Join(home, ".ssh", "known_hosts") || s.keyNamed || len(s.keyFiles) != 3 {
		t.Errorf("ssh target = %+v", *s)
	}
	env[EnvSSHKey], env[EnvSSHKnownHosts] = "/keys/k", "/keys/known"
	got, err = Parse(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if s := got.ssh; !s.keyNamed || len(s.keyFiles) != 1 || s.keyFiles[0] != "/keys/k" || s.knownHosts != "/keys/known" {
		t.Errorf("with %s and %s: %+v", EnvSSHKey, EnvSSHKnownHosts, *s)
	}
}
