package rpc

// Direction says who sends a method and whether it is answered.
type Direction string

// Directions of a method.
const (
	// ClientRequest: the client asks, the server answers.
	ClientRequest Direction = "client request"
	// ClientNotification: the client tells, nothing is answered.
	ClientNotification Direction = "client notification"
	// ServerNotification: the server tells, nothing is answered.
	ServerNotification Direction = "server notification"
	// ServerRequest: the server asks a client that declared it can
	// answer, and the client answers.
	ServerRequest Direction = "server request"
)

// MethodSpec describes one method of the protocol. Methods is the one
// source from which extension/src/protocol.ts, protocol.schema.json and
// protocol.md's tables are generated (scripts/genprotocol.sh), and from
// which the server lists capabilities.methods.
type MethodSpec struct {
	Name string
	Dir  Direction
	// Params and Result are zero values of the wire types; nil Params: the
	// method takes none, nil Result on a request: the result is null.
	Params any
	Result any
	// AlsoOtherDir: a client notification is accepted as a request too
	// (answered {}), or a request as a notification.
	AlsoOtherDir bool
	// Doc is one line for the generated tables and types.
	Doc string
}

// empty is the {} result of the methods that return nothing else.
type empty struct{}

// Methods lists every method of the protocol, in protocol.md's order.
var Methods = []MethodSpec{
	{Name: MethodInitialize, Dir: ClientRequest, Params: InitializeParams{}, Result: InitializeResult{},
		Doc: "the first request: the server's limits and methods"},
	{Name: MethodInitialized, Dir: ClientNotification, Doc: "accepted, no effect"},
	{Name: MethodShutdown, Dir: ClientRequest, Doc: "closes the sessions this connection started that do not persist, waits for the teardown, then answers null"},
	{Name: MethodExit, Dir: ClientNotification, Doc: "ends the server: code 0 after shutdown, else 1"},
	{Name: MethodCancelRequest, Dir: ClientNotification, Params: CancelParams{}, Doc: "cancels a request still running"},
	{Name: MethodAgents, Dir: ClientRequest, Params: AgentsParams{}, Result: AgentsResult{},
		Doc: "a manifest's agents, so that an editor can offer them"},
	{Name: MethodPlan, Dir: ClientRequest, Params: PlanParams{}, Result: PlanResult{},
		Doc: "the preflight: what bottle/start would do, with no side effects"},
	{Name: MethodStart, Dir: ClientRequest, Params: StartParams{}, Result: StartResult{},
		Doc: "makes a bottle and answers once it is ready"},
	{Name: MethodExec, Dir: ClientRequest, Params: ExecParams{}, Result: ExecResult{},
		Doc: "starts a process in a session; its output follows as bottle/output"},
	{Name: MethodInput, Dir: ClientNotification, Params: InputParams{}, Result: empty{}, AlsoOtherDir: true,
		Doc: "bytes for an exec's input"},
	{Name: MethodResize, Dir: ClientNotification, Params: ResizeParams{}, Result: empty{}, AlsoOtherDir: true,
		Doc: "an exec's new terminal size"},
	{Name: MethodAck, Dir: ClientNotification, Params: AckParams{}, Result: empty{}, AlsoOtherDir: true,
		Doc: "output bytes consumed: flow control"},
	{Name: MethodKill, Dir: ClientRequest, Params: KillParams{}, Result: empty{}, AlsoOtherDir: true,
		Doc: "ends an exec and what it started; the session stays"},
	{Name: MethodCp, Dir: ClientRequest, Params: CpParams{}, Result: CpResult{},
		Doc: "copies a host file or folder into the bottle"},
	{Name: MethodCpOut, Dir: ClientRequest, Params: CpOutParams{}, Result: CpOutResult{},
		Doc: "copies a file or folder out of the bottle to the host"},
	{Name: MethodChanges, Dir: ClientRequest, Params: ChangesParams{}, Result: ChangesResult{},
		Doc: "what the agent changed in its workspace since the start: commits, files, a diff"},
	{Name: MethodFetch, Dir: ClientRequest, Params: FetchParams{}, Result: FetchResult{},
		Doc: "brings the agent's commits and work into the host repository as a branch"},
	{Name: MethodClose, Dir: ClientRequest, Params: CloseParams{}, Result: CloseResult{},
		Doc: "ends every exec of a session and removes its bottle"},
	{Name: MethodList, Dir: ClientRequest, Params: ListParams{}, Result: ListResult{},
		Doc: "every session of this server, recently closed ones included"},
	{Name: MethodAllow, Dir: ClientRequest, Params: AllowParams{}, Result: AllowlistResult{},
		Doc: "adds entries to a running bottle's allowlist"},
	{Name: MethodDisallow, Dir: ClientRequest, Params: DisallowParams{}, Result: AllowlistResult{},
		Doc: "takes entries off a running bottle's allowlist, for new connections"},
	{Name: MethodAttach, Dir: ClientRequest, Params: AttachParams{}, Result: AttachResult{},
		Doc: "this connection gets a session's output (kept output replayed first), egress events and state changes"},
	{Name: MethodDetach, Dir: ClientRequest, Params: DetachParams{}, Result: empty{},
		Doc: "this connection stops getting a session's output; the session stays"},
	{Name: MethodEgressApproval, Dir: ServerRequest, Params: EgressApprovalParams{}, Result: EgressApprovalResult{},
		Doc: "asks the user whether the agent may reach a host its allowlist does not name"},
	{Name: MethodOutput, Dir: ServerNotification, Params: OutputParams{}, Doc: "output bytes of an exec"},
	{Name: MethodExecExit, Dir: ServerNotification, Params: ExitParams{}, Doc: "an exec has ended: sent once, after its last output"},
	{Name: MethodEgress, Dir: ServerNotification, Params: EgressParams{}, Doc: "one event of a session's egress proxy"},
	{Name: MethodSessionState, Dir: ServerNotification, Params: SessionStateParams{}, Doc: "a session attached to this connection changed state"},
	{Name: MethodProgress, Dir: ServerNotification, Params: ProgressParams{}, Doc: "work-done progress of bottle/start"},
	{Name: MethodLogMessage, Dir: ServerNotification, Params: LogMessageParams{}, Doc: "a message for the user's output panel"},
}

// ExtraTypes are wire types that are no method's params or result: the
// data of errors.
var ExtraTypes = []any{ErrorData{}}
