package rpc

import (
	"encoding/json"
	"errors"
	"fmt"

	"go.lsp.dev/jsonrpc2"

	"github.com/bottle-dev/bottle/backend"
	"github.com/bottle-dev/bottle/gitwork"
	"github.com/bottle-dev/bottle/hostcopy"
	"github.com/bottle-dev/bottle/manifest"
	"github.com/bottle-dev/bottle/session"
)

// Error codes. The standard JSON-RPC and LSP codes, then the project's own
// range, -32100 to -32199.
const (
	CodeParseError           jsonrpc2.Code = -32700
	CodeInvalidRequest       jsonrpc2.Code = -32600
	CodeMethodNotFound       jsonrpc2.Code = -32601
	CodeInvalidParams        jsonrpc2.Code = -32602
	CodeInternalError        jsonrpc2.Code = -32603
	CodeServerNotInitialized jsonrpc2.Code = -32002
	CodeRequestCancelled     jsonrpc2.Code = -32800

	CodeEngineUnavailable  jsonrpc2.Code = -32100
	CodeSessionNotFound    jsonrpc2.Code = -32101
	CodeManifestInvalid    jsonrpc2.Code = -32102
	CodeExecNotFound       jsonrpc2.Code = -32103
	CodeNameTaken          jsonrpc2.Code = -32104
	CodeRuntimeUnavailable jsonrpc2.Code = -32105
	CodeImageUnavailable   jsonrpc2.Code = -32106
	CodeSessionNotReady    jsonrpc2.Code = -32107
	CodeShuttingDown       jsonrpc2.Code = -32108
)

// Kinds in ErrorData.Kind: what went wrong, finer than the code.
const (
	KindParseError         = "parseError"
	KindInvalidRequest     = "invalidRequest"
	KindMessageTooLarge    = "messageTooLarge"
	KindAlreadyInitialized = "alreadyInitialized"
	KindMethodNotFound     = "methodNotFound"
	KindInvalidParams      = "invalidParams"
	KindUnknownAgent       = "unknownAgent"
	KindInternal           = "internal"
	KindTeardownFailed     = "teardownFailed"
	KindNotInitialized     = "notInitialized"
	KindCancelled          = "cancelled"
	KindEngineUnavailable  = "engineUnavailable"
	KindSessionNotFound    = "sessionNotFound"
	KindManifestInvalid    = "manifestInvalid"
	KindManifestUnreadable = "manifestUnreadable"
	KindExecNotFound       = "execNotFound"
	KindNameTaken          = "nameTaken"
	KindRuntimeUnavailable = "runtimeUnavailable"
	KindImageUnavailable   = "imageUnavailable"
	KindSessionNotReady    = "sessionNotReady"
	KindShuttingDown       = "shuttingDown"
	KindNoGit              = "noGit"
	KindNoBase             = "noBase"
)

// ErrorData is the data of every error the server sends.
type ErrorData struct {
	// Kind says what went wrong (one of the Kind constants).
	Kind string `json:"kind"`
	// Hint says what to do next.
	Hint string `json:"hint"`
	// Field names the offending param, for invalidParams.
	Field string `json:"field,omitempty"`
	// Limit is the size limit in bytes, for messageTooLarge.
	Limit int64 `json:"limit,omitempty"`
	// Agents lists the manifest's agents, for unknownAgent.
	Agents []string `json:"agents,omitempty"`
	// Problems lists every problem found, for manifestInvalid.
	Problems []ManifestProblem `json:"problems,omitempty"`
}

// ManifestProblem is one problem in a bottle.yaml.
type ManifestProblem struct {
	// the manifest or policy file at fault
	File string `json:"file"`
	// its line, when known
	Line int `json:"line,omitempty"`
	// the field at fault, as a dotted path (bottles.web.runtime)
	Field string `json:"field,omitempty"`
	// what is wrong
	Message string `json:"message"`
}

// rpcError builds a wire error.
func rpcError(code jsonrpc2.Code, data ErrorData, format string, args ...any) *jsonrpc2.Error {
	e := jsonrpc2.Errorf(code, format, args...)
	raw, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("rpc: ErrorData does not marshal: %v", err)) // plain strings and ints only
	}
	msg := json.RawMessage(raw)
	e.Data = &msg
	return e
}

// invalidParams is a -32602 naming the param at fault.
func invalidParams(field, hint, format string, args ...any) *jsonrpc2.Error {
	return rpcError(CodeInvalidParams, ErrorData{Kind: KindInvalidParams, Field: field, Hint: hint}, format, args...)
}

// errorFor maps an error from the registry, a backend or the manifest to a
// wire error. Errors that are already wire errors pass through.
func errorFor(err error) *jsonrpc2.Error {
	var wire *jsonrpc2.Error
	if errors.As(err, &wire) {
		return wire
	}
	if problems := manifestProblems(err); len(problems) > 0 {
		return rpcError(CodeManifestInvalid, ErrorData{
			Kind:     KindManifestInvalid,
			Hint:     "fix the listed problems in the manifest and try again",
			Problems: problems,
		}, "%v", err)
	}
	for _, m := range errorKinds {
		if errors.Is(err, m.err) {
			data := ErrorData{Kind: m.kind, Hint: m.hint}
			// A backend error that knows its cause better than its kind
			// does (a failed build is not a missing image) says what to do.
			if h := (interface{ Hint() string })(nil); errors.As(err, &h) {
				data.Hint = h.Hint()
			}
			data.Field = m.field
			if field := (*backend.FieldError)(nil); m.kind == KindInvalidParams && errors.As(err, &field) {
				data.Field = field.Field
			}
			return rpcError(m.code, data, "%v", err)
		}
	}
	return rpcError(CodeInternalError, ErrorData{
		Kind: KindInternal,
		Hint: "see the server's log (stderr) for details",
	}, "%v", err)
}

// errorKinds maps sentinel errors to codes, most specific first. field,
// when set, names the param at fault (a backend.FieldError names its own).
var errorKinds = []struct {
	err   error
	code  jsonrpc2.Code
	kind  string
	hint  string
	field string
}{
	{session.ErrShuttingDown, CodeShuttingDown, KindShuttingDown,
		"the server is shutting down: send exit and start a new server", ""},
	{session.ErrNotFound, CodeSessionNotFound, KindSessionNotFound,
		"call bottle/list for the live sessions, or bottle/start a new one", ""},
	{session.ErrExecNotFound, CodeExecNotFound, KindExecNotFound,
		"use the exec id returned by bottle/exec; bottle/list shows them", ""},
	{backend.ErrBottleGone, CodeSessionNotReady, KindSessionNotReady,
		"the bottle's container stopped or was removed (did the Docker daemon restart?): close the session and start a new one", ""},
	{session.ErrFailed, CodeSessionNotReady, KindSessionNotReady,
		"the session failed (the message says why; if the Docker daemon stopped, start it): close the session and start a new one", ""},
	{session.ErrNotReady, CodeSessionNotReady, KindSessionNotReady,
		"the session is starting, closing or closed: wait for its start, or start a new session", ""},
	{backend.ErrClosed, CodeSessionNotReady, KindSessionNotReady,
		"the bottle is closed: start a new session", ""},
	{backend.ErrEngineUnavailable, CodeEngineUnavailable, KindEngineUnavailable,
		"start the Docker daemon (or set DOCKER_HOST) and check that this user may use it, then retry", ""},
	{backend.ErrRuntimeUnavailable, CodeRuntimeUnavailable, KindRuntimeUnavailable,
		"register gVisor's runsc with the Docker daemon, or set runtime: runc (or auto) for this bottle in bottle.yaml", ""},
	{backend.ErrImage, CodeImageUnavailable, KindImageUnavailable,
		"run scripts/setup.sh to build the images (nothing can be pulled), or fix the bottle's image or build in bottle.yaml", ""},
	{backend.ErrNameTaken, CodeNameTaken, KindNameTaken,
		"pick another containerName, or remove the container that has it (bottle-rpc gc removes leftover bottles)", ""},
	{gitwork.ErrNoGit, CodeInvalidParams, KindNoGit,
		"start the bottle with copyGit from a folder whose git repository has a commit, or copy files out with bottle/cpOut", "session"},
	{gitwork.ErrNoBase, CodeInvalidParams, KindNoBase,
		"the commit the bottle started from is gone (its history was rewritten, or .git replaced): nothing was fetched; copy the files out with bottle/cpOut", "session"},
	{gitwork.ErrTooLarge, CodeInvalidParams, KindInvalidParams,
		"fetch without the uncommitted work (includeUncommitted: false), or copy large files out with bottle/cpOut", "includeUncommitted"},
	{gitwork.ErrBranchTaken, CodeInvalidParams, KindInvalidParams,
		"give another branch, or delete that one on the host if it is yours to lose", "branch"},
	{hostcopy.ErrExists, CodeInvalidParams, KindInvalidParams,
		"pass overwrite: true to replace it, or pick a hostPath that does not exist", "hostPath"},
	{hostcopy.ErrTooLarge, CodeInvalidParams, KindInvalidParams,
		"copy a smaller file or folder, or raise maxBytes if you expect that much", "maxBytes"},
	{hostcopy.ErrUnsafe, CodeInvalidParams, KindInvalidParams,
		"nothing was kept: the bottle's archive held an entry that could land outside hostPath or is not a file, folder or link; copy the files you want one by one", "containerPath"},
	{backend.ErrInvalid, CodeInvalidParams, KindInvalidParams,
		"fix the request as the message says", ""},
}

// manifestProblems collects every *manifest.Error in err's tree: a
// manifest reports all its problems at once, joined.
func manifestProblems(err error) []ManifestProblem {
	var out []ManifestProblem
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *manifest.Error:
			out = append(out, ManifestProblem{File: e.File, Line: e.Line, Field: e.Field, Message: e.Msg})
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}
