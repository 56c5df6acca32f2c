// The wire types of bottle-rpc's JSON-RPC protocol, mirrored from
// rpc/protocol.go and rpc/errors.go (protocol.md is the contract). Bytes
// travel as standard base64 strings.

export const Method = {
  initialize: 'initialize',
  initialized: 'initialized',
  shutdown: 'shutdown',
  exit: 'exit',
  plan: 'bottle/plan',
  agents: 'bottle/agents',
  start: 'bottle/start',
  exec: 'bottle/exec',
  input: 'bottle/input',
  resize: 'bottle/resize',
  ack: 'bottle/ack',
  kill: 'bottle/kill',
  cp: 'bottle/cp',
  close: 'bottle/close',
  list: 'bottle/list',
  // Notifications from the server.
  progress: '$/progress',
  logMessage: 'window/logMessage',
  output: 'bottle/output',
  execExit: 'bottle/exit',
  egress: 'bottle/egress',
} as const;

export interface ClientInfo {
  name: string;
  version?: string;
}

export interface InitializeParams {
  clientInfo?: ClientInfo;
  capabilities?: Record<string, never>;
}

export interface InitializeResult {
  serverInfo: { name: string; version: string };
  capabilities: {
    flowControl: { window: number; maxChunk: number };
    maxMessageSize: number;
    workDoneProgress: boolean;
    methods: string[];
  };
}

export interface PlanParams {
  agent: string;
  manifest?: string;
  cwd?: string;
}

export interface AgentsParams {
  manifest?: string;
  cwd?: string;
}

export interface AgentInfo {
  name: string;
  bottle: string;
  command: string[];
  allow: string[];
}

export interface AgentsResult {
  manifest: string;
  agents: AgentInfo[];
}

export interface CopyItem {
  what: string;
  from?: string;
  to: string;
  mode?: string;
}

export interface PlanResult {
  agent: string;
  bottle: string;
  runtime: string;
  runtimeLabel: string;
  image: string;
  networks: string[];
  allow: string[];
  command: string[];
  copyIn: CopyItem[];
}

export type ProgressToken = number | string;

export interface StartParams {
  agent: string;
  manifest?: string;
  cwd?: string;
  copyGit?: boolean;
  containerName?: string;
  env?: Record<string, string>;
  workDoneToken?: ProgressToken;
}

export interface StartResult {
  session: string;
  agent: string;
  container: string;
  containerId: string;
  runtime: string;
  runtimeLabel: string;
  image: string;
}

export interface ExecParams {
  session: string;
  /** Empty runs the agent's own command. */
  argv?: string[];
  tty?: boolean;
  cols?: number;
  rows?: number;
  env?: Record<string, string>;
}

export interface ExecResult {
  exec: string;
}

export interface OutputParams {
  exec: string;
  data: string;
}

export interface ExitParams {
  exec: string;
  /** -1 when unknown; then error says why. */
  code: number;
  error?: string;
}

export interface InputParams {
  exec: string;
  data?: string;
  eof?: boolean;
}

export interface ResizeParams {
  exec: string;
  cols: number;
  rows: number;
}

export interface AckParams {
  exec: string;
  bytes: number;
}

export interface KillParams {
  exec: string;
}

export interface CpParams {
  session: string;
  hostPath: string;
  containerPath: string;
}

export interface CpResult {
  bytes: number;
}

export interface CloseParams {
  session: string;
}

export interface ExecInfo {
  exec: string;
  argv: string[];
  tty: boolean;
  running: boolean;
  code?: number;
  error?: string;
  sent: number;
  acked: number;
}

export interface SessionInfo {
  session: string;
  agent: string;
  /** starting, ready, closing, closed or failed. */
  state: string;
  container?: string;
  runtime?: string;
  runtimeLabel?: string;
  image?: string;
  error?: string;
  execs: ExecInfo[];
}

export interface ListResult {
  sessions: SessionInfo[];
}

export interface EgressRecord {
  time: string;
  event: 'decision' | 'close';
  method: string;
  host: string;
  port: number;
  decision: 'allow' | 'deny';
  rule: string;
  reason?: string;
  bytesUp?: number;
  bytesDown?: number;
}

export interface EgressParams {
  session: string;
  record: EgressRecord;
}

export interface WorkDoneProgress {
  kind: 'begin' | 'report' | 'end';
  title?: string;
  cancellable?: boolean;
  message?: string;
  percentage?: number;
}

export const MessageType = { error: 1, warning: 2, info: 3, log: 4 } as const;

export interface LogMessageParams {
  type: number;
  message: string;
}

export interface ManifestProblem {
  file: string;
  line?: number;
  field?: string;
  message: string;
}

/** The data of every error the server sends. */
export interface ErrorData {
  kind: string;
  hint: string;
  field?: string;
  limit?: number;
  agents?: string[];
  problems?: ManifestProblem[];
}
