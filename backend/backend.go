// Package backend is the contract between sessions and whatever runs
// bottles. The session layer knows a bottle only through these interfaces,
// so a second backend (a remote engine, Kubernetes) can come later without
// touching the protocol or the session registry.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bottle-dev/bottle/egress"
	"github.com/bottle-dev/bottle/manifest"
)

// Backend plans and starts bottles.
type Backend interface {
	// Plan says what Start would do, without side effects.
	Plan(ctx context.Context, spec StartSpec) (*Plan, error)
	// Start makes a bottle. On any error everything it made is removed.
	Start(ctx context.Context, spec StartSpec, progress Progress) (Bottle, error)
}

// StartSpec is what a bottle is made from.
type StartSpec struct {
	Manifest *manifest.Manifest
	Agent    string
	// Session names the bottle in labels and audit records; the backend
	// makes one up when it is empty.
	Session string
	// Cwd, when set, is copied into the agent's workspace through an image
	// derived from the agent image.
	Cwd string
	// CopyGit copies Cwd/.git into ~/workspace/.git, owned by the agent user.
	CopyGit bool
	// ContainerName pins the agent container's name: a taken name is an
	// error instead of a retry with a suffix.
	ContainerName string
	// Env is added to the agent container's environment. It is visible in
	// the container's configuration, so it must hold no secrets.
	Env map[string]string
	// OnEgress, when set, receives every record of the bottle's egress
	// proxy as it happens, as the proxy wrote it. The backend keeps none:
	// the caller persists them (session does, in the session's audit file).
	OnEgress func(egress.Record)
	// Answers says the caller answers the proxy's questions (egress "ask"
	// records handed to OnEgress) with Bottle.Answer. Without it the proxy
	// never holds a connection to ask, whatever the manifest's egress.ask
	// says: nobody would answer.
	Answers bool
}

// Plan is the preflight: what a start would make and copy in.
type Plan struct {
	Agent        string     `json:"agent"`
	Bottle       string     `json:"bottle"`
	Runtime      string     `json:"runtime"`
	RuntimeLabel string     `json:"runtimeLabel"`
	Image        string     `json:"image"`
	Networks     []string   `json:"networks"`
	Allow        []string   `json:"allow"`
	Command      []string   `json:"command"`
	CopyIn       []CopyItem `json:"copyIn"`
	// Warm: a start now would take a bottle made ahead of time.
	Warm bool `json:"warm"`
	// Engine names the engine: "local" for this machine's socket, else its
	// address without credentials.
	Engine string `json:"engine"`
}

// CopyItem is one thing provisioned into the agent container.
type CopyItem struct {
	What string `json:"what"` // prompt, skill, ssh-key, known-hosts, ssh-config, git, workspace
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	Mode string `json:"mode,omitempty"`
}

// Step is one stage of a start, reported as it begins.
type Step struct {
	Name    string // a step of the backend's own; it reaches clients as $/progress's step
	Message string
	Done    int // steps finished before this one
	Total   int
}

// Progress receives steps; it may be nil.
type Progress func(Step)

// Bottle is a started bottle.
type Bottle interface {
	Info() Info
	// Exec runs a process in the bottle as the agent user.
	Exec(ctx context.Context, spec ExecSpec) (Process, error)
	// CopyIn copies a host file or folder to containerPath (absolute), owned
	// by the agent user, and returns the number of file bytes copied once
	// the bottle's own processes see them. Missing parent folders are made.
	// A destination the agent user cannot write is a FieldError; only
	// ErrBottleGone and ErrEngineUnavailable say the bottle itself is lost.
	CopyIn(ctx context.Context, hostPath, containerPath string) (int64, error)
	// Run runs argv in the bottle as the agent user, in the workspace, without a terminal: stdin from in (nil: none),
	// stdout to out; it returns the exit code and the first 4 KiB of stderr. ctx cancels it (the process is killed).
	Run(ctx context.Context, argv []string, in io.Reader, out io.Writer) (code int, stderr string, err error)
	// Archive writes a tar of containerPath (absolute, cleaned, not /) to
	// w, as the agent user can read it: its top entry is named
	// path.Base(containerPath), and a symbolic link is archived as the
	// link, never followed. A path that is missing or that the agent user
	// cannot read all of is a FieldError of "containerPath". What it
	// wrote before an error is not the archive asked for.
	Archive(ctx context.Context, containerPath string, w io.Writer) error
	// SetPolicy replaces the egress proxy's allowlist and blocklist (entries
	// in the manifest's canonical form) for new connections; tunnels open
	// stay open. client says who asked, for the audit record the proxy
	// writes. A bottle whose proxy cannot be changed (Info.LivePolicy is
	// false) returns ErrPolicyFixed.
	SetPolicy(ctx context.Context, allow, block []string, client string) error
	// Answer answers the proxy's question id (an egress "ask" record):
	// allow lets the connections it holds through this once, else they are
	// refused.
	Answer(ctx context.Context, id uint64, allow bool) error
	// Close removes everything the bottle made. It is idempotent.
	Close(ctx context.Context) error
}

// Info describes a started bottle. It is not a wire type: the protocol's
// StartResult copies what a client may see of it.
type Info struct {
	Session      string
	Agent        string
	Container    string
	ContainerID  string
	Runtime      string
	RuntimeLabel string
	Image        string
	// Home is the agent user's home folder in the bottle.
	Home string
	// Workspace is the agent's working folder in the bottle, where execs
	// run and the host folder was copied.
	Workspace string
	ProxyAddr string
	// LivePolicy: the bottle's proxy takes SetPolicy and Answer (the
	// built-in one does; a sidecar of the manifest's own does not).
	LivePolicy bool
	// Allow and Block are the egress allowlist and blocklist the bottle
	// started with, in the manifest's canonical form.
	Allow []string
	Block []string
	// AskTimeout is how long the proxy holds a connection it asks about;
	// 0 when it never asks.
	AskTimeout time.Duration
	// Warm: the bottle was made ahead of time and taken from a pool.
	Warm bool
}

// ExecSpec is a process to run in a bottle.
type ExecSpec struct {
	// Argv is the command; empty runs the agent's command with its prompt.
	Argv []string
	Tty  bool
	Cols uint
	Rows uint
	// Env is added to the process's environment only: values given here
	// never show in the container's configuration.
	Env map[string]string
}

// Process is a running exec. Read returns its output (stdout and stderr
// merged) until the process ends; Write feeds its input.
type Process interface {
	io.Reader
	io.Writer
	// CloseInput signals end of input.
	CloseInput() error
	Resize(ctx context.Context, cols, rows uint) error
	// Argv is the command line that runs (the agent's when none was given).
	Argv() []string
	// Kill ends the process and whatever it started.
	Kill(ctx context.Context) error
	// Wait returns the exit code once the output has been read to the end.
	// It returns promptly once ctx is done or the process was closed.
	Wait(ctx context.Context) (int, error)
	// Close ends the connection to the process; the process itself may go
	// on until it reads its closed input or is killed.
	Close() error
}

// Errors a backend wraps so that callers can tell the kinds apart.
var (
	ErrEngineUnavailable  = errors.New("container engine unavailable")
	ErrRuntimeUnavailable = errors.New("runtime unavailable")
	ErrImage              = errors.New("image unavailable")
	ErrNameTaken          = errors.New("container name taken")
	ErrInvalid            = errors.New("invalid request")
	ErrClosed             = errors.New("bottle closed")
	// ErrBottleGone: the bottle's container stopped or vanished under it
	// (the daemon restarted, someone removed it).
	ErrBottleGone = errors.New("bottle container gone")
	// ErrPolicyFixed: the bottle's egress proxy is not the built-in one,
	// so its policy cannot change while it runs.
	ErrPolicyFixed = fmt.Errorf("%w: this bottle's egress proxy is a sidecar of the manifest's own, whose policy the server cannot change; edit its config and start a new bottle", ErrInvalid)
)

// FieldError is an ErrInvalid about one field of the request, named as
// the protocol names it (hostPath, containerPath), so that the client can
// point at it.
type FieldError struct {
	Field string
	Err   error // wraps ErrInvalid
}

// InvalidField is an ErrInvalid about field; the message says what is wrong.
func InvalidField(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)}
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }
