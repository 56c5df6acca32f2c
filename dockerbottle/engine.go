// Package dockerbottle makes bottles on a Docker engine through the Engine
// API: runtime probe, image builds, networks, the egress sidecar, the agent
// container, provisioning, exec, copy-in, teardown and reaping of orphans.
package dockerbottle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/docker/docker/client"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/dockerhost"
)

// Options configure an Engine.
type Options struct {
	// ProxyBinary is the bottle-rpc executable that becomes the egress
	// sidecar's image: a static one alone, a cgo-built one with its loader
	// and libraries (see sidecarlibs.go). Empty means the running
	// executable.
	ProxyBinary string
	// SubnetPool is the IPv4 range that bottle networks are carved from;
	// empty means DefaultSubnetPool.
	SubnetPool string
	// Getenv reads the host environment (pass-through variables and the
	// OAuth token); nil means os.Getenv.
	Getenv func(string) string
	Logger *slog.Logger
	// Pool is how many bottles are kept made ahead of time for each kind
	// of start seen (see pool.go), unless the bottle's manifest says; 0
	// keeps none.
	Pool int
}

// Engine makes bottles on one Docker engine.
type Engine struct {
	cli    engineAPI
	owner  Owner
	log    *slog.Logger
	getenv func(string) string
	pool   *subnetPool

	// egressMu makes this server look for and make the shared egress
	// network one start at a time.
	egressMu sync.Mutex

	names namesInFlight

	proxyBinary string
	proxyMu     sync.Mutex
	proxyImage  string

	name string // the engine for people (backend.Plan.Engine): dockerhost's Target.Name

	warm *warmPool
}

var _ backend.Backend = (*Engine)(nil)

// New connects to the engine named by the environment (DOCKER_HOST and
// friends, as dockerhost reads them: this machine's socket, tcp with TLS or
// ssh://) and checks that it answers.
func New(ctx context.Context, opts Options) (*Engine, error) {
	cli, target, err := dockerhost.Connect(ctx, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", backend.ErrEngineUnavailable, err)
	}
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, unavailable(fmt.Errorf("%s over %s: %w", target.Name, target.Transport, err))
	}
	e, err := newEngine(cli, opts)
	if err != nil {
		cli.Close()
		return nil, err
	}
	e.name = target.Name
	return e, nil
}

// newEngine is an Engine on an API that answered; it closes nothing when
// it fails.
func newEngine(cli engineAPI, opts Options) (*Engine, error) {
	pool, err := newSubnetPool(opts.SubnetPool)
	if err != nil {
		return nil, err
	}
	owner, err := CurrentOwner()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cli:         cli,
		owner:       owner,
		log:         opts.Logger,
		getenv:      opts.Getenv,
		pool:        pool,
		proxyBinary: opts.ProxyBinary,
	}
	e.warm = newWarmPool(e, opts.Pool)
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.getenv == nil {
		e.getenv = os.Getenv
	}
	if e.proxyBinary == "" {
		if e.proxyBinary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding the bottle-rpc executable for the egress sidecar: %w", err)
		}
	}
	return e, nil
}

// Close releases the connection to the engine; bottles stay up.
func (e *Engine) Close() error { return e.cli.Close() }

// Owner is the identity this engine labels its resources with.
func (e *Engine) Owner() Owner { return e.owner }

func unavailable(err error) error {
	return fmt.Errorf("%w: %v; start it (scripts/setup.sh does) or point DOCKER_HOST at one", backend.ErrEngineUnavailable, err)
}

// engineErr marks errors that mean the engine went away, so that callers
// can tell "the daemon is down" from "the request was wrong".
func engineErr(err error) error {
	if err == nil {
		return nil
	}
	if client.IsErrConnectionFailed(err) && !errors.Is(err, backend.ErrEngineUnavailable) {
		return unavailable(err)
	}
	return err
}
