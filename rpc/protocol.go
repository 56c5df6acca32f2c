// Package rpc is bottle's JSON-RPC protocol: the types of every method's
// params and results and of every notification, the error codes, and a
// Server that dispatches the methods onto a session.Registry over one
// Content-Length framed stream (stdio). protocol.md at the repository root
// is the contract for clients; this file mirrors it.
package rpc

import (
	"encoding/json"
	"time"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/egress"
)

// Methods a client calls (requests) or sends (notifications).
const (
	MethodInitialize    = "initialize"      // request
	MethodInitialized   = "initialized"     // notification
	MethodShutdown      = "shutdown"        // request
	MethodExit          = "exit"            // notification
	MethodCancelRequest = "$/cancelRequest" // notification
	MethodPlan          = "bottle/plan"     // request
	MethodStart         = "bottle/start"    // request
	MethodExec          = "bottle/exec"     // request
	MethodInput         = "bottle/input"    // notification (a request is accepted too)
	MethodResize        = "bottle/resize"   // notification (a request is accepted too)
	MethodAck           = "bottle/ack"      // notification (a request is accepted too)
	MethodKill          = "bottle/kill"     // request (a notification is accepted too)
	MethodCp            = "bottle/cp"       // request
	MethodClose         = "bottle/close"    // request
	MethodList          = "bottle/list"     // request
	MethodAgents        = "bottle/agents"   // request
	MethodAllow         = "bottle/allow"    // request
	MethodDisallow      = "bottle/disallow" // request
	MethodAttach        = "bottle/attach"   // request
	MethodDetach        = "bottle/detach"   // request
	MethodCpOut         = "bottle/cpOut"    // request
	MethodChanges       = "bottle/changes"  // request
	MethodFetch         = "bottle/fetch"    // request
)

// Requests the server sends to a client that declared it can answer them.
const (
	MethodEgressApproval = "bottle/egressApproval"
)

// Notifications the server sends.
const (
	MethodProgress     = "$/progress"
	MethodLogMessage   = "window/logMessage"
	MethodOutput       = "bottle/output"
	MethodExecExit     = "bottle/exit"
	MethodEgress       = "bottle/egress"
	MethodSessionState = "bottle/sessionState"
)

// ServerName is serverInfo.name.
const ServerName = "bottle-rpc"

// The comments on the types below are the protocol's documentation: the
// first paragraph of each field's comment is the "meaning" column of
// protocol.md's tables and the doc of extension/src/protocol.ts, both
// generated (scripts/genprotocol.sh). Struct tags beyond json tell the
// generator what Go's types cannot: `wire:"id"` (a JSON integer or
// string, kept raw), `wire:"object"` (any JSON object), `enum:"a,b"` (the
// values a string takes).

// InitializeParams are the params of initialize.
type InitializeParams struct {
	// the client, for the server's log
	ClientInfo *ClientInfo `json:"clientInfo,omitempty"`
	// what the client can do beyond the protocol every client speaks;
	// unknown fields are ignored
	Capabilities *ClientCapabilities `json:"capabilities,omitempty"`
}

// ClientCapabilities say which optional parts of the protocol a client
// takes part in.
type ClientCapabilities struct {
	// the client answers bottle/egressApproval: the server may ask it
	// whether a bottle may reach a host its allowlist does not name.
	// Without it such connections are refused at once
	EgressApproval bool `json:"egressApproval,omitempty"`
}

// ClientInfo names the client, for the server's log.
type ClientInfo struct {
	// the client's name
	Name string `json:"name"`
	// the client's version
	Version string `json:"version,omitempty"`
}

// InitializeResult is the result of initialize.
type InitializeResult struct {
	// the server
	ServerInfo ServerInfo `json:"serverInfo"`
	// the limits a client codes against, and the methods
	Capabilities ServerCapabilities `json:"capabilities"`
}

// ServerInfo names the server.
type ServerInfo struct {
	// `bottle-rpc`
	Name string `json:"name"`
	// the server's version
	Version string `json:"version"`
}

// ServerCapabilities tell a client the limits it codes against.
type ServerCapabilities struct {
	// the pacing of every exec's bottle/output
	FlowControl FlowControl `json:"flowControl"`
	// the largest `Content-Length` accepted, in bytes (16777216)
	MaxMessageSize int64 `json:"maxMessageSize"`
	// always true: bottle/start reports `$/progress` for a `workDoneToken`
	WorkDoneProgress bool `json:"workDoneProgress"`
	// every method the server handles, requests and notifications, sorted
	Methods []string `json:"methods"`
	// the output bytes kept per exec for bottle/attach's replay and a
	// lagging client's resync (default 1048576)
	Scrollback int `json:"scrollback"`
}

// FlowControl describes bottle/output pacing.
type FlowControl struct {
	// the most output bytes (decoded) of one exec sent and not yet
	// acknowledged with bottle/ack (default 262144)
	Window int `json:"window"`
	// the most decoded bytes in one bottle/output (16384)
	MaxChunk int `json:"maxChunk"`
}

// CancelParams are the params of $/cancelRequest.
type CancelParams struct {
	// the id of the request to cancel
	ID json.RawMessage `json:"id" wire:"id"`
}

// AgentsParams are the params of bottle/agents.
type AgentsParams struct {
	// a bottle.yaml path as in bottle/plan; absent: the built-in manifest
	Manifest string `json:"manifest,omitempty"`
	// an absolute folder that a relative `manifest` resolves against
	Cwd string `json:"cwd,omitempty"`
}

// AgentsResult lists a manifest's agents, sorted by name.
type AgentsResult struct {
	// the file read, or `(built-in)`
	Manifest string `json:"manifest"`
	// the manifest's agents, sorted by name
	Agents []AgentInfo `json:"agents"`
}

// AgentInfo is one agent of a manifest.
type AgentInfo struct {
	// the agent's name
	Name string `json:"name"`
	// the bottle it runs in
	Bottle string `json:"bottle"`
	// its command with its arguments
	Command []string `json:"command"`
	// the bottle's egress allowlist
	Allow []string `json:"allow"`
}

// PlanParams are the params of bottle/plan.
type PlanParams struct {
	// the agent to run, as named in the manifest (`claude` in the built-in
	// one)
	Agent string `json:"agent"`
	// path to a `bottle.yaml`; relative paths resolve against `cwd` when
	// given, else against the server's working directory. Absent: the
	// built-in manifest
	Manifest string `json:"manifest,omitempty"`
	// absolute path of an existing host folder, copied into the agent's
	// workspace
	Cwd string `json:"cwd,omitempty"`
}

// PlanResult is the result of bottle/plan: the preflight.
type PlanResult struct {
	// the agent
	Agent string `json:"agent"`
	// the bottle (container definition) it runs in
	Bottle string `json:"bottle"`
	// the OCI runtime that will be used: `runsc` (gVisor) or `runc`
	Runtime string `json:"runtime"`
	// the runtime for people, e.g. `runsc (gVisor)`
	RuntimeLabel string `json:"runtimeLabel"`
	// image reference, or `build: PATH/Dockerfile` when it is built
	Image string `json:"image"`
	// the networks that will be made, described
	Networks []string `json:"networks"`
	// the egress allowlist: `host`, `*.domain`, `host:port`, ...
	Allow []string `json:"allow"`
	// what an exec without `argv` runs
	Command []string `json:"command"`
	// what is provisioned into the container
	CopyIn []CopyItem `json:"copyIn"`
	// a start now would take a bottle made ahead of time from the
	// server's warm pool (see "Warm starts")
	Warm bool `json:"warm"`
	// the engine bottles run on: `local` for this machine's socket, else
	// `DOCKER_HOST`'s address without credentials (`tcp://build:2376`,
	// `ssh://dev@build`)
	Engine string `json:"engine"`
}

// CopyItem is one thing provisioned into the agent container.
type CopyItem struct {
	// what it is
	What string `json:"what" enum:"prompt,skill,ssh-key,known-hosts,ssh-config,git,workspace"`
	// the host path it comes from, when it comes from a file
	From string `json:"from,omitempty"`
	// the path in the container
	To string `json:"to"`
	// its mode, in octal, when it is not the default
	Mode string `json:"mode,omitempty"`
}

// planResult is the wire form of a backend's plan.
func planResult(p *backend.Plan) *PlanResult {
	res := &PlanResult{
		Agent:        p.Agent,
		Bottle:       p.Bottle,
		Runtime:      p.Runtime,
		RuntimeLabel: p.RuntimeLabel,
		Image:        p.Image,
		Networks:     nonNil(p.Networks),
		Allow:        nonNil(p.Allow),
		Command:      nonNil(p.Command),
		CopyIn:       []CopyItem{},
		Warm:         p.Warm,
		Engine:       p.Engine,
	}
	for _, c := range p.CopyIn {
		res.CopyIn = append(res.CopyIn, CopyItem{What: c.What, From: c.From, To: c.To, Mode: c.Mode})
	}
	return res
}

// nonNil keeps an empty list a list on the wire, never null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// StartParams are the params of bottle/start.
type StartParams struct {
	// as in bottle/plan
	Agent string `json:"agent"`
	// as in bottle/plan
	Manifest string `json:"manifest,omitempty"`
	// as in bottle/plan
	Cwd string `json:"cwd,omitempty"`
	// also copy `cwd/.git` into the workspace; needs `cwd` with a `.git`
	// folder
	CopyGit bool `json:"copyGit,omitempty"`
	// pin the agent container's name; a taken name is error -32104
	ContainerName string `json:"containerName,omitempty"`
	// added to the bottle's environment: the container's, or every
	// process's in a warm start. It may show in the container's
	// configuration: **no secrets** (use bottle/exec's `env` for those)
	Env map[string]string `json:"env,omitempty"`
	// report progress as `$/progress` with this token
	WorkDoneToken ProgressToken `json:"workDoneToken,omitempty" wire:"id"`
	// keep the bottle when this connection ends: it runs on with no client
	// until bottle/close or the server's own end. False: it closes with
	// the connection that started it
	Persist bool `json:"persist,omitempty"`
}

// ProgressToken is an LSP progress token: a JSON integer or string, kept
// as the client sent it.
type ProgressToken = json.RawMessage

// StartResult is the result of bottle/start.
type StartResult struct {
	// the session id (8 hex digits), used by every later call
	Session string `json:"session"`
	// the agent
	Agent string `json:"agent"`
	// the agent container's name
	Container string `json:"container"`
	// the agent container's id
	ContainerID string `json:"containerId"`
	// `runsc` or `runc`
	Runtime string `json:"runtime"`
	// the runtime for people
	RuntimeLabel string `json:"runtimeLabel"`
	// the image the agent runs from
	Image string `json:"image"`
	// the agent user's home folder in the bottle (`/home/node` in the
	// built-in images)
	Home string `json:"home"`
	// the agent's workspace in the bottle, where execs run and `cwd` was
	// copied (`/home/node/workspace` in the built-in images)
	Workspace string `json:"workspace"`
	// the bottle was made ahead of time and taken from the warm pool
	Warm bool `json:"warm"`
}

// ExecParams are the params of bottle/exec.
type ExecParams struct {
	// the session
	Session string `json:"session"`
	// the command. Absent or empty: the agent's command with its prompt
	// appended (for the default agent `claude --append-system-prompt-file
	// <prompt>`)
	Argv []string `json:"argv,omitempty"`
	// allocate a pseudo-terminal; **default true**
	Tty *bool `json:"tty,omitempty"`
	// terminal width; default 80 with a tty
	Cols uint `json:"cols,omitempty"`
	// terminal height; default 24 with a tty
	Rows uint `json:"rows,omitempty"`
	// added to this process's environment only (never stored in the
	// container's configuration)
	Env map[string]string `json:"env,omitempty"`
}

// ExecResult is the result of bottle/exec.
type ExecResult struct {
	// the exec's id, unique in the server (`SESSION-N`)
	Exec string `json:"exec"`
}

// OutputParams are the params of the bottle/output notification.
type OutputParams struct {
	// the exec
	Exec string `json:"exec"`
	// raw output bytes in standard base64 (with padding), at most
	// `maxChunk` decoded bytes
	Data []byte `json:"data"`
	// these bytes were written before this connection attached: the kept
	// output bottle/attach replays, sent before any live output of the exec
	Replay bool `json:"replay,omitempty"`
	// this connection fell so far behind that output it had not been sent
	// is no longer kept: the bytes from here on continue from the oldest
	// kept byte, so a terminal should reset before writing them
	Resync bool `json:"resync,omitempty"`
}

// ExitParams are the params of the bottle/exit notification.
type ExitParams struct {
	// the exec
	Exec string `json:"exec"`
	// the process's exit code, or -1 when it is unknown
	Code int `json:"code"`
	// why the code is unknown (the session was closed, the exec was killed
	// and the engine gave no code, ...)
	Error string `json:"error,omitempty"`
}

// InputParams are the params of bottle/input.
type InputParams struct {
	// the exec
	Exec string `json:"exec"`
	// bytes for the process's input, **standard base64** (RFC 4648, with
	// padding)
	Data []byte `json:"data,omitempty"`
	// close the process's input after `data`
	EOF bool `json:"eof,omitempty"`
}

// ResizeParams are the params of bottle/resize.
type ResizeParams struct {
	// the exec
	Exec string `json:"exec"`
	// the new terminal width, at least 1
	Cols uint `json:"cols"`
	// the new terminal height, at least 1
	Rows uint `json:"rows"`
}

// AckParams are the params of bottle/ack.
type AckParams struct {
	// the exec
	Exec string `json:"exec"`
	// decoded output bytes consumed since the last ack, at least 0
	Bytes int64 `json:"bytes"`
}

// KillParams are the params of bottle/kill.
type KillParams struct {
	// the exec
	Exec string `json:"exec"`
}

// CpParams are the params of bottle/cp.
type CpParams struct {
	// the session
	Session string `json:"session"`
	// absolute path of an existing host file or folder
	HostPath string `json:"hostPath"`
	// absolute path in the bottle that the file or folder becomes (not the
	// folder it goes into); not `/`
	ContainerPath string `json:"containerPath"`
}

// CpResult is the result of bottle/cp.
type CpResult struct {
	// the number of file bytes copied
	Bytes int64 `json:"bytes"`
}

// CpOutParams are the params of bottle/cpOut.
type CpOutParams struct {
	// the session
	Session string `json:"session"`
	// absolute path of a file or folder in the bottle, as the agent sees it
	ContainerPath string `json:"containerPath"`
	// absolute host path the file or folder becomes (not the folder it goes
	// into); its parent must exist
	HostPath string `json:"hostPath"`
	// replace an existing hostPath (a folder is merged into); without it an
	// existing hostPath is error -32602
	Overwrite bool `json:"overwrite,omitempty"`
	// the most bytes of file content copied (default 1073741824, 1 GiB):
	// beyond it the copy stops, what was written is removed, and the error
	// says so
	MaxBytes int64 `json:"maxBytes,omitempty"`
}

// CpOutResult is the result of bottle/cpOut.
type CpOutResult struct {
	// the number of file bytes written on the host
	Bytes int64 `json:"bytes"`
}

// ChangesParams are the params of bottle/changes.
type ChangesParams struct {
	// the session; it must have been started with `copyGit`
	Session string `json:"session"`
	// also return the unified diff of base against the workspace
	Diff bool `json:"diff,omitempty"`
}

// ChangesResult is the result of bottle/changes.
type ChangesResult struct {
	// the commit the bottle was given at start
	Base string `json:"base"`
	// the workspace's HEAD commit now
	Head string `json:"head"`
	// the commits on top of base, oldest first
	Commits []CommitInfo `json:"commits"`
	// every file that differs from base: committed, uncommitted or untracked
	Files []FileChange `json:"files"`
	// the unified diff of base against the workspace (untracked files
	// included), when asked for
	Diff string `json:"diff,omitempty"`
	// the diff was cut at its size limit (1 MiB)
	Truncated bool `json:"truncated,omitempty"`
}

// CommitInfo is one commit the agent made.
type CommitInfo struct {
	// its full hash
	ID string `json:"id"`
	// its subject line
	Subject string `json:"subject"`
}

// FileChange is one file the agent changed.
type FileChange struct {
	// the path in the repository
	Path string `json:"path"`
	// how it changed
	Status string `json:"status" enum:"added,modified,deleted,renamed,untracked"`
	// the path before a rename
	OldPath string `json:"oldPath,omitempty"`
}

// FetchParams are the params of bottle/fetch.
type FetchParams struct {
	// the session; it must have been started with `copyGit` and `cwd`
	Session string `json:"session"`
	// the branch made in the host repository at `cwd` (default
	// `bottle/AGENT/SESSION`)
	Branch string `json:"branch,omitempty"`
	// add one commit on top holding the uncommitted and untracked work
	// (default true)
	IncludeUncommitted *bool `json:"includeUncommitted,omitempty"`
}

// FetchResult is the result of bottle/fetch.
type FetchResult struct {
	// the branch made or updated; empty when there was nothing to fetch
	Branch string `json:"branch"`
	// the commit the branch points at
	Head string `json:"head"`
	// the commit the bottle was given at start
	Base string `json:"base"`
	// how many commits the branch has on top of base
	Commits int `json:"commits"`
	// whether its last commit holds the uncommitted and untracked work
	Uncommitted bool `json:"uncommitted"`
}

// CloseParams are the params of bottle/close.
type CloseParams struct {
	// the session
	Session string `json:"session"`
}

// CloseResult is the result of bottle/close.
type CloseResult struct {
	// work the bottle had that bottle/fetch had not brought home when it
	// closed; absent when there was none or the session had no git
	Unfetched *Unfetched `json:"unfetched,omitempty"`
}

// Unfetched counts the work a closed bottle took with it.
type Unfetched struct {
	// commits on top of base not fetched
	Commits int `json:"commits"`
	// files changed and not fetched
	Files int `json:"files"`
}

// ListParams are the params of bottle/list: none.
type ListParams struct{}

// ListResult is the result of bottle/list.
type ListResult struct {
	// every session of this server in start order, closed ones not yet forgotten included (see "What the server keeps")
	Sessions []SessionInfo `json:"sessions"`
}

// SessionInfo describes one session in bottle/list.
type SessionInfo struct {
	// the id
	Session string `json:"session"`
	// the agent
	Agent string `json:"agent"`
	// `failed`: its container stopped or vanished, or the container
	// engine went away, while it was ready (requests on it then get -32107
	// naming the cause), or its teardown failed; bottle/close removes what
	// is left, or retries the teardown
	State string `json:"state" enum:"starting,ready,closing,closed,failed"`
	// as in the start result, once ready
	Container string `json:"container,omitempty"`
	// as in the start result, once ready
	Runtime string `json:"runtime,omitempty"`
	// as in the start result, once ready
	RuntimeLabel string `json:"runtimeLabel,omitempty"`
	// as in the start result, once ready
	Image string `json:"image,omitempty"`
	// as in the start result, once ready
	Home string `json:"home,omitempty"`
	// as in the start result, once ready
	Workspace string `json:"workspace,omitempty"`
	// why it failed
	Error string `json:"error,omitempty"`
	// the live egress allowlist, with what bottle/allow, bottle/disallow
	// and approvals changed, once ready; absent for a bottle whose own
	// sidecar the server cannot change
	Allow []string `json:"allow,omitempty"`
	// its execs in start order
	Execs []ExecInfo `json:"execs"`
	// it outlives the connection that started it (bottle/start's `persist`)
	Persist bool `json:"persist"`
	// how many connections are attached: get its output, egress events
	// and state changes
	Attached int `json:"attached"`
}

// ExecInfo describes one exec in bottle/list.
type ExecInfo struct {
	// the id
	Exec string `json:"exec"`
	// the command that runs: the agent's command with its prompt when the
	// exec gave none
	Argv []string `json:"argv"`
	// whether it has a terminal
	Tty bool `json:"tty"`
	// false once exited
	Running bool `json:"running"`
	// the exit code, once exited
	Code *int `json:"code,omitempty"`
	// why the code is unknown (-1)
	Error string `json:"error,omitempty"`
	// decoded output bytes sent so far to this connection
	Sent int64 `json:"sent"`
	// decoded output bytes this connection acknowledged so far: every
	// bottle/ack the server read before this request counts, up to `sent`
	Acked int64 `json:"acked"`
	// decoded output bytes the process wrote so far, to any connection
	Output int64 `json:"output"`
}

// AttachParams are the params of bottle/attach.
type AttachParams struct {
	// the session
	Session string `json:"session"`
}

// AttachResult is the result of bottle/attach.
type AttachResult struct {
	// the session as bottle/list describes it, this connection counted in
	// `attached`
	Session SessionInfo `json:"session"`
}

// DetachParams are the params of bottle/detach.
type DetachParams struct {
	// the session
	Session string `json:"session"`
}

// SessionStateParams are the params of the bottle/sessionState
// notification.
type SessionStateParams struct {
	// the session
	Session string `json:"session"`
	// its new state
	State string `json:"state" enum:"starting,ready,closing,closed,failed"`
	// why it failed
	Error string `json:"error,omitempty"`
}

// EgressParams are the params of the bottle/egress notification.
type EgressParams struct {
	// the session whose proxy decided
	Session string `json:"session"`
	// what it decided
	Record EgressRecord `json:"record"`
}

// EgressRecord is one decision or closed connection of a session's egress
// proxy.
type EgressRecord struct {
	// when, RFC 3339
	Time time.Time `json:"time"`
	// `decision` for every connection attempt; `close` when an allowed
	// connection ended; `ask` when the proxy holds a connection that only
	// default-deny refuses and asks (bottle/egressApproval); `policy` when
	// the allowlist or blocklist changed
	Event string `json:"event" enum:"decision,close,ask,policy"`
	// on `ask`: the question's number; the decision that follows carries
	// the host and port, not the number
	ID uint64 `json:"id,omitempty"`
	// `CONNECT`, or the HTTP method of a plain-HTTP request
	Method string `json:"method"`
	// lowercase host name; `(redacted)` when the name itself carried a
	// secret
	Host string `json:"host"`
	// port, 0 on a bad request
	Port int `json:"port"`
	// allowed or denied; `ask` on an `ask` event, whose decision follows
	// as a `decision` record once the user answered or the time ran out; on
	// `policy`: whether the change was applied
	Decision string `json:"decision" enum:"allow,deny,ask"`
	// what decided: the allowlist entry that matched, `default-deny`,
	// `bad-request`, `block:ENTRY` (the blocklist), `dlp:NAME` (a secret
	// pattern, named, never the secret), `dlp:secret:VAR` (the value of a
	// host variable marked secret), `ssrf-guard` (the name resolved to a
	// private, loopback or link-local address and the host is not
	// trusted), `sni-mismatch` (the TLS ClientHello named another host
	// than the CONNECT) or `tls-unreadable`
	Rule string `json:"rule"`
	// why it was denied, or why the dial or upstream failed
	Reason string `json:"reason,omitempty"`
	// on `close`: bytes client to upstream
	BytesUp int64 `json:"bytesUp,omitempty"`
	// on `close`: bytes upstream to client
	BytesDown int64 `json:"bytesDown,omitempty"`
	// on `policy`: what changed, e.g. `allow +github.com:443`
	Change string `json:"change,omitempty"`
	// on `policy`: who changed it: a client's name from initialize, or
	// `approval` (an answer allowSession)
	Client string `json:"client,omitempty"`
}

// egressParams is the one conversion from the proxy's record, which the
// audit file keeps as it is, to bottle/egress: the wire keeps
// protocol.md's names (bytesUp, not the file's bytes_up) and carries the
// session beside the record, not in it.
func egressParams(r egress.Record) EgressParams {
	decision := r.Decision
	if r.Event == egress.EventAsk && decision == "" {
		decision = DecisionAsk
	}
	return EgressParams{
		Session: r.Session,
		Record: EgressRecord{
			Time:      r.Time,
			Event:     r.Event,
			Method:    r.Method,
			Host:      r.Host,
			Port:      r.Port,
			Decision:  decision,
			Rule:      r.Rule,
			Reason:    r.Reason,
			BytesUp:   r.BytesUp,
			BytesDown: r.BytesDown,
			ID:        r.ID,
			Change:    r.Change,
			Client:    r.Client,
		},
	}
}

// DecisionAsk is an `ask` record's decision on the wire: none yet.
const DecisionAsk = "ask"

// AllowParams are the params of bottle/allow.
type AllowParams struct {
	// the session
	Session string `json:"session"`
	// allowlist entries in bottle.yaml's syntax (`host`, `host:port`,
	// `host:*`, `*.domain`, ...); each is checked with the proxy's own
	// parser, and one bad entry changes nothing
	Entries []string `json:"entries"`
}

// DisallowParams are the params of bottle/disallow.
type DisallowParams struct {
	// the session
	Session string `json:"session"`
	// entries to take off the allowlist, as bottle/allow takes them; one
	// not on the list is no error
	Entries []string `json:"entries"`
}

// AllowlistResult is the result of bottle/allow and bottle/disallow.
type AllowlistResult struct {
	// the session's allowlist after the change
	Allow []string `json:"allow"`
}

// EgressApprovalParams are the params of bottle/egressApproval, which the
// server sends to a client that declared capabilities.egressApproval.
type EgressApprovalParams struct {
	// the session whose agent connects
	Session string `json:"session"`
	// `CONNECT`, or the HTTP method of a plain-HTTP request
	Method string `json:"method"`
	// the host the agent wants, lowercase
	Host string `json:"host"`
	// its port
	Port int `json:"port"`
}

// Decisions a client answers bottle/egressApproval with.
const (
	ApprovalAllowOnce    = "allowOnce"
	ApprovalAllowSession = "allowSession"
	ApprovalDeny         = "deny"
)

// EgressApprovalResult is the client's answer to bottle/egressApproval.
type EgressApprovalResult struct {
	// `allowOnce`: the connections waiting on this question go through,
	// the allowlist stays; `allowSession`: `host:port` joins the session's
	// allowlist, then they go through; `deny`: they are refused (403).
	// Anything else, an error or no answer in time counts as `deny`
	Decision string `json:"decision" enum:"allowOnce,allowSession,deny"`
}

// ProgressParams are the params of $/progress.
type ProgressParams struct {
	// the `workDoneToken` of the bottle/start
	Token ProgressToken `json:"token" wire:"id"`
	// the progress
	Value WorkDoneProgress `json:"value"`
}

// Kinds of WorkDoneProgress.
const (
	ProgressBegin  = "begin"
	ProgressReport = "report"
	ProgressEnd    = "end"
)

// WorkDoneProgress is the value of $/progress, as in LSP, plus Step.
type WorkDoneProgress struct {
	// `begin` once, a `report` per step, `end` once
	Kind string `json:"kind" enum:"begin,report,end"`
	// on begin: `Starting bottle AGENT`
	Title string `json:"title,omitempty"`
	// on begin: true, the start can be cancelled
	Cancellable bool `json:"cancellable,omitempty"`
	// on report: the step, for people; on end: `ready`, `cancelled` or
	// `failed: ...`
	Message string `json:"message,omitempty"`
	// on begin and report: 0 to 100
	Percentage *int `json:"percentage,omitempty"`
	// on every report: the step it begins (runtime, image, networks,
	// containers, start, ready); an extension to LSP's report, which
	// clients that do not know it ignore
	Step string `json:"step,omitempty"`
}

// MessageType is the type of window/logMessage, as in LSP.
type MessageType int

// Message types.
const (
	MessageError   MessageType = 1
	MessageWarning MessageType = 2
	MessageInfo    MessageType = 3
	MessageLog     MessageType = 4
)

// LogMessageParams are the params of window/logMessage.
type LogMessageParams struct {
	// 1 error, 2 warning, 3 info, 4 log
	Type MessageType `json:"type" enum:"1,2,3,4"`
	// the message
	Message string `json:"message"`
}
