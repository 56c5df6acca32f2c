package dockerbottle

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/manifest"
)

// The agent user of every bottle image: "node", as in the public Node images.
const (
	agentUser    = "node"
	agentUID     = 1000
	agentGID     = 1000
	homeDir      = "/home/node"
	workspaceDir = homeDir + "/workspace"
)

// provisioning is what goes into the agent container before it starts, as
// one tar whose headers carry owner and mode: no exec round-trips for chown
// or chmod.
type provisioning struct {
	files []contextFile // names relative to /
	items []backend.CopyItem
}

func (p *provisioning) add(f contextFile) { p.files = append(p.files, f) }

func (p *provisioning) item(what, from, to string, mode fs.FileMode) {
	p.items = append(p.items, backend.CopyItem{What: what, From: from, To: to, Mode: fmt.Sprintf("%04o", mode.Perm())})
}

func rel(abs string) string { return strings.TrimPrefix(abs, "/") }

// addDirs adds dir and its parents below the home, owned by the agent: a
// folder the tar does not carry is made root's.
func (p *provisioning) addDirs(dir string) {
	below, ok := strings.CutPrefix(dir, homeDir+"/")
	if !ok {
		return
	}
	at := homeDir
	for _, name := range strings.Split(below, "/") {
		at += "/" + name
		p.add(contextFile{Name: rel(at), Mode: fs.ModeDir | 0o755})
	}
}

func planProvisioning(agent *manifest.Agent, b *manifest.Bottle, spec backend.StartSpec, proxyAddr string) (*provisioning, error) {
	p := &provisioning{}
	if prompt := agent.PromptPath(homeDir); prompt != "" {
		p.addDirs(path.Dir(prompt))
		p.add(contextFile{Name: rel(prompt), Data: []byte(agent.Prompt), Mode: 0o600})
		p.item("prompt", agent.PromptFile, prompt, 0o600)
	}
	if len(agent.Skills) > 0 {
		skills := agent.SkillsPath(homeDir)
		if skills == "" {
			return nil, fmt.Errorf("%w: agent %s has skills, and its profile %s no skills_dir", backend.ErrInvalid, agent.Name, agent.Profile.Name)
		}
		p.addDirs(skills)
		for _, s := range agent.Skills {
			to := skills + "/" + s.Name
			files, err := walkDir(s.Dir, rel(to), nil)
			if err != nil {
				return nil, fmt.Errorf("skill %s: %w", s.Name, err)
			}
			p.add(contextFile{Name: rel(to), Mode: fs.ModeDir | 0o755})
			p.files = append(p.files, files...)
			p.item("skill", s.Dir, to, 0o755)
		}
	}
	if len(b.SSH) > 0 {
		if err := p.addSSH(b.SSH, proxyAddr); err != nil {
			return nil, err
		}
	}
	if spec.CopyGit {
		gitDir := filepath.Join(spec.Cwd, ".git")
		to := workspaceDir + "/.git"
		files, err := walkDir(gitDir, rel(to), nil)
		if err != nil {
			return nil, err
		}
		p.add(contextFile{Name: rel(to), Mode: fs.ModeDir | 0o755})
		p.files = append(p.files, files...)
		p.item("git", gitDir, to, 0o755)
	}
	return p, nil
}

// addSSH provisions keys, known_hosts and a config whose ProxyCommand goes
// through the sidecar's CONNECT: the agent has no other way out.
func (p *provisioning) addSSH(entries []manifest.SSH, proxyAddr string) error {
	dir := homeDir + "/.ssh"
	p.add(contextFile{Name: rel(dir), Mode: fs.ModeDir | 0o700})
	var config, known strings.Builder
	for i, s := range entries {
		key := fmt.Sprintf("%s/id_bottle_%d", dir, i)
		p.add(contextFile{Name: rel(key), Host: s.Key, Mode: 0o600})
		p.item("ssh-key", s.Key, key, 0o600)
		fmt.Fprintf(&config, "Host %s\n  HostName %s\n  Port %d\n", s.Host, s.Host, s.Port)
		if s.User != "" {
			fmt.Fprintf(&config, "  User %s\n", s.User)
		}
		fmt.Fprintf(&config, "  IdentityFile %s\n  IdentitiesOnly yes\n", key)
		fmt.Fprintf(&config, "  ProxyCommand nc -X connect -x %s %%h %%p\n", proxyAddr)
		if s.KnownHosts != "" {
			b, err := os.ReadFile(s.KnownHosts)
			if err != nil {
				return fmt.Errorf("reading known_hosts for %s: %w", s.Host, err)
			}
			known.Write(b)
			if len(b) > 0 && b[len(b)-1] != '\n' {
				known.WriteByte('\n')
			}
			fmt.Fprintf(&config, "  StrictHostKeyChecking yes\n")
		} else {
			fmt.Fprintf(&config, "  StrictHostKeyChecking accept-new\n")
		}
		config.WriteString("\n")
	}
	p.add(contextFile{Name: rel(dir + "/config"), Data: []byte(config.String()), Mode: 0o600})
	p.item("ssh-config", "", dir+"/config", 0o600)
	if known.Len() > 0 {
		p.add(contextFile{Name: rel(dir + "/known_hosts"), Data: []byte(known.String()), Mode: 0o644})
		p.item("known-hosts", "", dir+"/known_hosts", 0o644)
	}
	return nil
}

// copyFiles writes files into a created container as one tar extracted at
// dir, every entry owned by the agent user. Copying in before the start
// means the agent never sees a half-provisioned home, and the sandbox
// builds its view of the filesystem from what is there: a running bottle
// is copied into through the sandbox instead (see CopyIn).
func (e *Engine) copyFiles(ctx context.Context, containerID, dir string, files []contextFile) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, files, agentUID, agentGID)) }()
	defer pr.Close()
	err := e.cli.CopyToContainer(ctx, containerID, dir, pr, container.CopyToContainerOptions{})
	if err != nil {
		return fmt.Errorf("copying into the container at %s: %w", dir, engineErr(err))
	}
	return nil
}
