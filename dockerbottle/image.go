package dockerbottle

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/manifest"
)

// contextFile is one file of a build context: either on the host or given
// as bytes.
type contextFile struct {
	Name string // slash path inside the context
	Host string // host path, or "" when Data holds the content
	Data []byte
	Mode fs.FileMode
	Link string // symlink target
}

// buildContext is a Docker build context that is hashed without being read
// twice: the key says whether an image built from it already exists.
type buildContext struct {
	Dockerfile string
	Args       map[string]string
	Files      []contextFile
}

// largeFile is where hashing switches from content to metadata: the Claude
// Code binary alone is 400 MB, a second of SHA-256 on every start. A big
// file is keyed by size, mtime and inode instead; a change to it without a
// change to those is the one case a rebuild is missed.
const largeFile = 1 << 20

func (c *buildContext) key() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "dockerfile %q\n", c.Dockerfile)
	args := make([]string, 0, len(c.Args))
	for k, v := range c.Args {
		args = append(args, fmt.Sprintf("%q=%q", k, v))
	}
	sort.Strings(args)
	fmt.Fprintf(h, "args %s\n", strings.Join(args, " "))
	for _, f := range c.Files {
		fmt.Fprintf(h, "file %q %o %q\n", f.Name, f.Mode, f.Link)
		switch {
		case f.Host == "":
			h.Write(f.Data)
		default:
			st, err := os.Stat(f.Host)
			if err != nil {
				return "", err
			}
			if st.Size() > largeFile {
				var ino uint64
				if sys, ok := st.Sys().(*syscall.Stat_t); ok {
					ino = sys.Ino
				}
				fmt.Fprintf(h, "meta %d %d %d\n", st.Size(), st.ModTime().UnixNano(), ino)
				continue
			}
			if err := hashFile(h, f.Host); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// writeTar streams files as a tar, every entry owned by uid:gid.
func writeTar(w io.Writer, files []contextFile, uid, gid int) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		if err := writeTarEntry(tw, f, uid, gid); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeTarEntry(tw *tar.Writer, f contextFile, uid, gid int) error {
	hdr := &tar.Header{Name: f.Name, Mode: int64(f.Mode.Perm()), Uid: uid, Gid: gid, Format: tar.FormatPAX}
	switch {
	case f.Mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name = strings.TrimSuffix(f.Name, "/") + "/"
		return tw.WriteHeader(hdr)
	case f.Mode&fs.ModeSymlink != 0:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = f.Link
		return tw.WriteHeader(hdr)
	case f.Host == "":
		hdr.Typeflag = tar.TypeReg
		hdr.Size = int64(len(f.Data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(f.Data)
		return err
	default:
		src, err := os.Open(f.Host)
		if err != nil {
			return err
		}
		defer src.Close()
		st, err := src.Stat()
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, src, st.Size()); err != nil {
			return fmt.Errorf("adding %s: %w", f.Host, err)
		}
		return nil
	}
}

// skipFunc says what of a folder walkDir leaves out, by slash path
// relative to the folder.
type skipFunc func(rel string, dir bool) (skipWhat, error)

type skipWhat int

const (
	keepEntry skipWhat = iota
	skipEntry          // this entry only: a folder's contents are still walked
	skipTree           // a folder and everything in it
)

// walkDir lists a host folder as context files under prefix, leaving out
// what skip says to (nil keeps everything).
func walkDir(root, prefix string, skip skipFunc) ([]contextFile, error) {
	var files []contextFile
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if skip != nil {
			what, err := skip(filepath.ToSlash(rel), d.IsDir())
			switch {
			case err != nil:
				return err
			case what == skipTree && d.IsDir():
				return filepath.SkipDir
			case what != keepEntry:
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		switch {
		case info.Mode().IsDir():
			files = append(files, contextFile{Name: name, Mode: fs.ModeDir | info.Mode().Perm()})
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			files = append(files, contextFile{Name: name, Mode: fs.ModeSymlink | 0o777, Link: target})
		case info.Mode().IsRegular():
			files = append(files, contextFile{Name: name, Host: path, Mode: info.Mode().Perm()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", root, err)
	}
	return files, nil
}

// buildContextFiles lists a build context as the docker CLI sends it:
// without what its .dockerignore excludes, but always with the Dockerfile
// and the .dockerignore itself.
func buildContextFiles(root, dockerfile string) ([]contextFile, error) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return walkDir(root, "", nil)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the .dockerignore of %s: %w", root, err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(root, ".dockerignore"), err)
	}
	patterns = append(patterns, "!.dockerignore", "!"+filepath.ToSlash(filepath.Clean(dockerfile)))
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(root, ".dockerignore"), err)
	}
	return walkDir(root, "", func(rel string, dir bool) (skipWhat, error) {
		out, err := pm.MatchesOrParentMatches(rel)
		switch {
		case err != nil:
			return keepEntry, fmt.Errorf("%s: %w", filepath.Join(root, ".dockerignore"), err)
		case !out:
			return keepEntry, nil
		case dir && !hasExceptionUnder(pm, rel):
			return skipTree, nil
		}
		return skipEntry, nil
	})
}

// hasExceptionUnder says whether a "!" pattern may bring back something
// inside the excluded folder dir, so it must still be walked.
func hasExceptionUnder(pm *patternmatcher.PatternMatcher, dir string) bool {
	for _, p := range pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String()+"/", dir+"/") {
			return true
		}
	}
	return false
}

// buildCached returns the tag of an image built from c, building it only
// when no image with the same content key exists: a warm start never
// rebuilds.
func (e *Engine) buildCached(ctx context.Context, repo string, c *buildContext) (string, error) {
	key, err := c.key()
	if err != nil {
		return "", fmt.Errorf("hashing the build context of %s: %w", repo, err)
	}
	tag := repo + ":" + key
	if ok, err := e.haveImage(ctx, tag); err != nil || ok {
		return tag, err
	}
	e.log.Info("building image", "image", tag)
	if err := e.build(ctx, c, tag, map[string]string{LabelCache: repo}); err != nil {
		return "", err
	}
	e.pruneCache(ctx, repo, tag)
	return tag, nil
}

// pruneCache removes the images an earlier content of repo's context
// built: the cache keeps one image a repository. An image a container
// still uses stays (the engine refuses), and goes at the next build.
func (e *Engine) pruneCache(ctx context.Context, repo, keep string) {
	imgs, err := e.cli.ImageList(ctx, image.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelCache+"="+repo))})
	if err != nil {
		e.log.Warn("listing cached images", "repo", repo, "err", err)
		return
	}
	// By tag: builds of the same content share one image under several
	// tags, and removing a tag removes the image with its last tag.
	for _, img := range imgs {
		refs := img.RepoTags
		if len(refs) == 0 {
			refs = []string{img.ID}
		}
		for _, ref := range refs {
			if ref == keep {
				continue
			}
			if _, err := e.cli.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
				e.log.Warn("removing an old cached image", "image", ref, "err", err)
			}
		}
	}
}

// build runs an image build with no network: nothing may be fetched while
// a bottle image is made.
func (e *Engine) build(ctx context.Context, c *buildContext, tag string, labels map[string]string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, c.Files, 0, 0)) }()
	defer pr.Close()
	args := make(map[string]*string, len(c.Args))
	for k, v := range c.Args {
		args[k] = &v
	}
	resp, err := e.cli.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  c.Dockerfile,
		BuildArgs:   args,
		Labels:      labels,
		NetworkMode: "none",
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		return fmt.Errorf("%w: building %s: %v", backend.ErrImage, tag, engineErr(err))
	}
	defer resp.Body.Close()
	var out strings.Builder
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &out, 0, false, nil); err != nil {
		return fmt.Errorf("%w: building %s: %v (build output: %s)", backend.ErrImage, tag, err, lastLines(out.String(), 5))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// agentImage is the image a bottle's agent runs: the manifest's image,
// which must already be on the engine (no registry is reached), or one
// built from its build context.
func (e *Engine) agentImage(ctx context.Context, b *manifest.Bottle) (string, error) {
	if b.Image != "" {
		ok, err := e.haveImage(ctx, b.Image)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("%w: image %s of bottle %s is not on the engine; build or load it (docker build -t %s ...), or give the bottle a build: section", backend.ErrImage, b.Image, b.Name, b.Image)
		}
		return b.Image, nil
	}
	if st, err := os.Stat(b.Build.Context); err != nil || !st.IsDir() {
		return "", fmt.Errorf("%w: build context %s of bottle %s is missing; run scripts/setup.sh to prepare the default agent image, or fix build.context", backend.ErrImage, b.Build.Context, b.Name)
	}
	files, err := buildContextFiles(b.Build.Context, b.Build.Dockerfile)
	if err != nil {
		return "", fmt.Errorf("%w: %v", backend.ErrImage, err)
	}
	return e.buildCached(ctx, "bottle/"+b.Name, &buildContext{Dockerfile: b.Build.Dockerfile, Args: b.Build.Args, Files: files})
}

// workspaceImage derives an image from the agent image with cwd copied to
// the workspace, owned by the agent user. .git is left out: it is copied
// in only when asked (StartSpec.CopyGit).
func (e *Engine) workspaceImage(ctx context.Context, from, cwd, session string) (string, error) {
	files, err := walkDir(cwd, "workspace", func(rel string, _ bool) (skipWhat, error) {
		if rel == ".git" {
			return skipTree, nil
		}
		return keepEntry, nil
	})
	if err != nil {
		return "", &hintedError{fmt.Errorf("%w: %v", backend.ErrImage, err), hintWorkspace}
	}
	dockerfile := fmt.Sprintf("FROM %s\nCOPY --chown=%d:%d workspace/ %s/\n", from, agentUID, agentGID, workspaceDir)
	// The folder itself is an entry: a folder that is empty, or holds only
	// .git, would otherwise leave the context without workspace/ and COPY
	// would fail.
	files = append([]contextFile{
		{Name: "Dockerfile.bottle", Data: []byte(dockerfile), Mode: 0o644},
		{Name: "workspace", Mode: fs.ModeDir | 0o755},
	}, files...)
	tag := "bottle-workspace:" + session
	labels := e.owner.Labels(session, "workspace-image")
	if err := e.build(ctx, &buildContext{Dockerfile: "Dockerfile.bottle", Files: files}, tag, labels); err != nil {
		return "", &hintedError{err, hintWorkspace}
	}
	return tag, nil
}

// hintWorkspace is the advice for a failed copy of cwd into the bottle's
// image: the agent image is in place by then, so setup.sh is no help.
const hintWorkspace = "the folder could not be copied into the bottle's image (the message says why): " +
	"check that every file in it is readable and that the engine has disk space, or start the bottle without cwd"

const proxyDockerfile = `FROM scratch
COPY bottle-rpc /bottle-rpc
USER 65534:65534
ENTRYPOINT ["/bottle-rpc", "egress-proxy"]
`

// dynamicProxyDockerfile is proxyDockerfile for a binary built with cgo:
// the loader and libraries it was linked against come along at their host
// paths, and names are looked up by Go's own resolver, as in the static
// build, so glibc never loads NSS modules the image lacks.
const dynamicProxyDockerfile = `FROM scratch
COPY rootfs/ /
COPY bottle-rpc /bottle-rpc
ENV LD_LIBRARY_PATH=%s GODEBUG=netdns=go
USER 65534:65534
ENTRYPOINT ["/bottle-rpc", "egress-proxy"]
`

// sidecarImage is the built-in egress proxy: a FROM scratch image holding
// the bottle-rpc binary itself, built once per binary. A binary built with
// cgo (go build's default where a C compiler is) brings its ELF
// interpreter and shared libraries from the host, so the sidecar runs the
// very same binary however it was built.
func (e *Engine) sidecarImage(ctx context.Context) (string, error) {
	e.proxyMu.Lock()
	defer e.proxyMu.Unlock()
	// Another process's build of another binary prunes this one's image:
	// the tag is remembered only while the image is there.
	if e.proxyImage != "" {
		ok, err := e.haveImage(ctx, e.proxyImage)
		if err != nil || ok {
			return e.proxyImage, err
		}
	}
	repo, c, err := proxyContext(e.proxyBinary)
	if err != nil {
		return "", &hintedError{fmt.Errorf("%w: %v", backend.ErrImage, err), hintProxyBinary}
	}
	tag, err := e.buildCached(ctx, repo, c)
	if err != nil {
		return "", err
	}
	e.proxyImage = tag
	return tag, nil
}

const hintProxyBinary = "the egress sidecar is made from this bottle-rpc binary and could not be: " +
	"build it with CGO_ENABLED=0 go build ./cmd/bottle-rpc for one that needs nothing from the host"

// proxyContext is the build context of the sidecar image for bin, and the
// repository its image is cached under. Static and cgo builds are cached
// apart: a machine may hold both, and neither evicts the other's image.
func proxyContext(bin string) (string, *buildContext, error) {
	deps, err := dynamicDeps(bin)
	if err != nil {
		return "", nil, err
	}
	binary := contextFile{Name: "bottle-rpc", Host: bin, Mode: 0o755}
	if deps.Interp == "" {
		return "bottle/egress-proxy", &buildContext{Dockerfile: "Dockerfile", Files: []contextFile{
			{Name: "Dockerfile", Data: []byte(proxyDockerfile), Mode: 0o644},
			binary,
		}}, nil
	}
	dockerfile := fmt.Sprintf(dynamicProxyDockerfile, strings.Join(deps.Dirs, ":"))
	files := []contextFile{
		{Name: "Dockerfile", Data: []byte(dockerfile), Mode: 0o644},
		binary,
		{Name: "rootfs", Mode: fs.ModeDir | 0o755},
	}
	files = append(files, deps.contextFiles("rootfs")...)
	return "bottle/egress-proxy-cgo", &buildContext{Dockerfile: "Dockerfile", Files: files}, nil
}

func (e *Engine) removeImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing image %s: %w", ref, engineErr(err))
	}
	return nil
}

// CheckProxyBinary says whether the sidecar can be built from this engine's
// proxy binary: it is an ELF executable, and if it is dynamically linked,
// its loader and every library it needs are found on the host.
func (e *Engine) CheckProxyBinary() error {
	_, _, err := proxyContext(e.proxyBinary)
	return err
}

// MissingImages lists what the bottles of m need that is not in place: an
// image that is not on the engine, a build context that is missing, or a
// build argument naming a base image that is not on the engine.
func (e *Engine) MissingImages(ctx context.Context, m *manifest.Manifest) ([]string, error) {
	var missing []string
	have := func(ref string) (bool, error) { return e.haveImage(ctx, ref) }
	for _, name := range slices.Sorted(maps.Keys(m.Bottles)) {
		b := m.Bottles[name]
		if b.Image != "" {
			ok, err := have(b.Image)
			if err != nil {
				return nil, err
			}
			if !ok {
				missing = append(missing, fmt.Sprintf("bottle %s: image %s is not on the engine", name, b.Image))
			}
			continue
		}
		if st, err := os.Stat(filepath.Join(b.Build.Context, b.Build.Dockerfile)); err != nil || st.IsDir() {
			missing = append(missing, fmt.Sprintf("bottle %s: no Dockerfile in build context %s", name, b.Build.Context))
		}
		if base := b.Build.Args["BASE"]; base != "" {
			ok, err := have(base)
			if err != nil {
				return nil, err
			}
			if !ok {
				missing = append(missing, fmt.Sprintf("bottle %s: base image %s is not on the engine", name, base))
			}
		}
	}
	return missing, nil
}

// haveImage says whether the engine has the image ref.
func (e *Engine) haveImage(ctx context.Context, ref string) (bool, error) {
	_, err := e.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up image %s: %w", ref, engineErr(err))
	}
	return true, nil
}

// hintedError is an error that knows better than its kind what the user
// should do next; the RPC layer sends its hint.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }
func (e *hintedError) Hint() string  { return e.hint }
