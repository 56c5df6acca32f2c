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
)

// Notifications the server sends.
const (
	MethodProgress   = "$/progress"
	MethodLogMessage = "window/logMessage"
	MethodOutput     = "bottle/output"
	MethodExecExit   = "bottle/exit"
	MethodEgress     = "bottle/egress"
)

// ServerName is serverInfo.name.
const ServerName = "bottle-rpc"

// InitializeParams are the params of initialize.
type InitializeParams struct {
	ClientInfo *ClientInfo `json:"clientInfo,omitempty"`
	// Capabilities are accepted and ignored: the server offers the same
	// protocol to every client.
	Capabilities json.RawMessage `json:"capabilities,omitempty"`
}

// ClientInfo names the client, for the server's log.
type ClientInfo struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// InitializeResult is the result of initialize.
type InitializeResult struct {
	ServerInfo   ServerInfo         `json:"serverInfo"`
	Capabilities ServerCapabilities `json:"capabilities"`
}

// ServerInfo names the server.
type ServerInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ServerCapabilities tell a client the limits it codes against.
type ServerCapabilities struct {
	// FlowControl is the output window of every exec.
	FlowControl FlowControl `json:"flowControl"`
	// MaxMessageSize is the largest Content-Length accepted, in bytes.
	MaxMessageSize int64 `json:"maxMessageSize"`
	// WorkDoneProgress: bottle/start reports $/progress for a workDoneToken.
	WorkDoneProgress bool `json:"workDoneProgress"`
	// Methods lists the requests and notifications the server handles.
	Methods []string `json:"methods"`
}

// FlowControl describes bottle/output pacing.
type FlowControl struct {
	// Window is the most output bytes (decoded) per exec sent and not yet
	// acknowledged with bottle/ack.
	Window int `json:"window"`
	// MaxChunk is the most decoded bytes in one bottle/output.
	MaxChunk int `json:"maxChunk"`
}

// PlanParams are the params of bottle/plan.
type PlanParams struct {
	Agent string `json:"agent"`
	// Manifest is a bottle.yaml path; relative paths resolve against Cwd
	// when it is set, else the server's working directory. Empty: the
	// built-in manifest.
	Manifest string `json:"manifest,omitempty"`
	// Cwd is an absolute host folder copied into the agent's workspace.
	Cwd string `json:"cwd,omitempty"`
}

// AgentsParams are the params of bottle/agents.
type AgentsParams struct {
	// Manifest is a bottle.yaml path as in bottle/plan; empty: the
	// built-in manifest.
	Manifest string `json:"manifest,omitempty"`
	// Cwd resolves a relative Manifest.
	Cwd string `json:"cwd,omitempty"`
}

// AgentsResult lists a manifest's agents, sorted by name.
type AgentsResult struct {
	Manifest string      `json:"manifest"` // the file read, or "(built-in)"
	Agents   []AgentInfo `json:"agents"`
}

// AgentInfo is one agent of a manifest.
type AgentInfo struct {
	Name    string   `json:"name"`
	Bottle  string   `json:"bottle"`
	Command []string `json:"command"`
	Allow   []string `json:"allow"`
}

// PlanResult is the result of bottle/plan: the preflight.
type PlanResult = backend.Plan

// StartParams are the params of bottle/start.
type StartParams struct {
	Agent    string `json:"agent"`
	Manifest string `json:"manifest,omitempty"`
	Cwd      string `json:"cwd,omitempty"`
	// CopyGit copies Cwd/.git into the workspace.
	CopyGit bool `json:"copyGit,omitempty"`
	// ContainerName pins the agent container's name; a taken name fails
	// with CodeNameTaken.
	ContainerName string `json:"containerName,omitempty"`
	// Env is added to the container's environment (visible in its
	// configuration: no secrets).
	Env map[string]string `json:"env,omitempty"`
	// WorkDoneToken, an integer or a string, asks for $/progress.
	WorkDoneToken ProgressToken `json:"workDoneToken,omitempty"`
}

// ProgressToken is an LSP progress token: a JSON integer or string, kept
// as the client sent it.
type ProgressToken = json.RawMessage

// StartResult is the result of bottle/start.
type StartResult struct {
	Session      string `json:"session"`
	Agent        string `json:"agent"`
	Container    string `json:"container"`
	ContainerID  string `json:"containerId"`
	Runtime      string `json:"runtime"`
	RuntimeLabel string `json:"runtimeLabel"`
	Image        string `json:"image"`
}

// ExecParams are the params of bottle/exec.
type ExecParams struct {
	Session string `json:"session"`
	// Argv is the command; empty runs the agent's command with its prompt.
	Argv []string `json:"argv,omitempty"`
	// Tty allocates a pseudo-terminal; true when omitted.
	Tty *bool `json:"tty,omitempty"`
	// Cols and Rows size the terminal; 80x24 when omitted with a tty.
	Cols uint `json:"cols,omitempty"`
	Rows uint `json:"rows,omitempty"`
	// Env is added to this process's environment only.
	Env map[string]string `json:"env,omitempty"`
}

// ExecResult is the result of bottle/exec.
type ExecResult struct {
	Exec string `json:"exec"`
}

// OutputParams are the params of the bottle/output notification.
type OutputParams struct {
	Exec string `json:"exec"`
	// Data is raw output bytes; on the wire, standard base64 with padding.
	Data []byte `json:"data"`
}

// ExitParams are the params of the bottle/exit notification.
type ExitParams struct {
	Exec string `json:"exec"`
	// Code is the exit code, -1 when unknown.
	Code int `json:"code"`
	// Error says why the code is unknown.
	Error string `json:"error,omitempty"`
}

// InputParams are the params of bottle/input.
type InputParams struct {
	Exec string `json:"exec"`
	// Data is raw input bytes; on the wire, standard base64.
	Data []byte `json:"data,omitempty"`
	// EOF closes the process's input after Data.
	EOF bool `json:"eof,omitempty"`
}

// ResizeParams are the params of bottle/resize.
type ResizeParams struct {
	Exec string `json:"exec"`
	Cols uint   `json:"cols"`
	Rows uint   `json:"rows"`
}

// AckParams are the params of bottle/ack.
type AckParams struct {
	Exec string `json:"exec"`
	// Bytes is how many decoded output bytes the client has consumed since
	// its last ack.
	Bytes int64 `json:"bytes"`
}

// KillParams are the params of bottle/kill.
type KillParams struct {
	Exec string `json:"exec"`
}

// CpParams are the params of bottle/cp.
type CpParams struct {
	Session string `json:"session"`
	// HostPath is an absolute path to an existing file or folder.
	HostPath string `json:"hostPath"`
	// ContainerPath is an absolute path in the bottle.
	ContainerPath string `json:"containerPath"`
}

// CpResult is the result of bottle/cp.
type CpResult struct {
	Bytes int64 `json:"bytes"`
}

// CloseParams are the params of bottle/close.
type CloseParams struct {
	Session string `json:"session"`
}

// ListParams are the params of bottle/list.
type ListParams struct{}

// ListResult is the result of bottle/list.
type ListResult struct {
	Sessions []SessionInfo `json:"sessions"`
}

// SessionInfo describes one session in bottle/list.
type SessionInfo struct {
	Session      string     `json:"session"`
	Agent        string     `json:"agent"`
	State        string     `json:"state"`
	Container    string     `json:"container,omitempty"`
	Runtime      string     `json:"runtime,omitempty"`
	RuntimeLabel string     `json:"runtimeLabel,omitempty"`
	Image        string     `json:"image,omitempty"`
	Error        string     `json:"error,omitempty"`
	Execs        []ExecInfo `json:"execs"`
}

// ExecInfo describes one exec in bottle/list.
type ExecInfo struct {
	Exec    string   `json:"exec"`
	Argv    []string `json:"argv"`
	Tty     bool     `json:"tty"`
	Running bool     `json:"running"`
	// Code is set once the exec has exited.
	Code  *int   `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Sent and Acked count decoded output bytes: Sent-Acked is at most
	// the window.
	Sent  int64 `json:"sent"`
	Acked int64 `json:"acked"`
}

// EgressParams are the params of the bottle/egress notification.
type EgressParams struct {
	Session string       `json:"session"`
	Record  EgressRecord `json:"record"`
}

// EgressRecord is one decision or closed connection of a session's egress
// proxy.
type EgressRecord struct {
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`  // "decision" or "close"
	Method   string    `json:"method"` // CONNECT, GET, ...
	Host     string    `json:"host"`
	Port     int       `json:"port"`
	Decision string    `json:"decision"` // "allow" or "deny"
	// Rule is the allowlist entry that decided, "default-deny" or
	// "bad-request".
	Rule      string `json:"rule"`
	Reason    string `json:"reason,omitempty"`
	BytesUp   int64  `json:"bytesUp,omitempty"`
	BytesDown int64  `json:"bytesDown,omitempty"`
}

// ProgressParams are the params of $/progress.
type ProgressParams struct {
	Token ProgressToken    `json:"token"`
	Value WorkDoneProgress `json:"value"`
}

// Kinds of WorkDoneProgress.
const (
	ProgressBegin  = "begin"
	ProgressReport = "report"
	ProgressEnd    = "end"
)

// WorkDoneProgress is the value of $/progress, as in LSP.
type WorkDoneProgress struct {
	Kind        string `json:"kind"`
	Title       string `json:"title,omitempty"`
	Cancellable bool   `json:"cancellable,omitempty"`
	Message     string `json:"message,omitempty"`
	// Percentage, 0 to 100; present on begin and report.
	Percentage *int `json:"percentage,omitempty"`
	// Step names the stage a report begins (runtime, image, networks,
	// containers, start, ready): an extension to LSP's report, which
	// clients that do not know it ignore.
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
	Type    MessageType `json:"type"`
	Message string      `json:"message"`
}

// CancelParams are the params of $/cancelRequest.
type CancelParams struct {
	// ID is the id of the request to cancel: an integer or a string.
	ID json.RawMessage `json:"id"`
}
