// The connection to bottle-rpc: spawns the server, speaks JSON-RPC to it
// over stdio, routes its notifications, and restarts it with backoff when
// it dies. No vscode import: the editor is reached through ClientHost.

import { spawn, type ChildProcess } from 'node:child_process';
import {
  CancellationToken,
  ConnectionError,
  createMessageConnection,
  Emitter,
  ErrorCodes,
  ProgressType,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  type Event,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import {
  Method,
  type AckParams,
  type AgentsParams,
  type AgentsResult,
  type AllowlistResult,
  type AllowParams,
  type AttachParams,
  type AttachResult,
  type ChangesParams,
  type ChangesResult,
  type ClientInfo,
  type CloseParams,
  type CloseResult,
  type CpOutParams,
  type CpOutResult,
  type CpParams,
  type CpResult,
  type DetachParams,
  type DisallowParams,
  type EgressApprovalParams,
  type EgressApprovalResult,
  type EgressParams,
  type ExecParams,
  type ExecResult,
  type ExitParams,
  type FetchParams,
  type FetchResult,
  type InitializeParams,
  type InitializeResult,
  type InputParams,
  type KillParams,
  type ListResult,
  type LogMessageParams,
  type OutputParams,
  type PlanParams,
  type PlanResult,
  type ResizeParams,
  type SessionStateParams,
  type StartParams,
  type StartResult,
  type WorkDoneProgress,
} from './protocol';
import { heldBytes, OutputHold, type Held } from './hold';
import type { ExecChannel, ExecSink } from './terminal';

/** How to run the server; asked again at every (re)start. */
export interface ServerSpec {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

export interface CrashInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines the server wrote to stderr. */
  stderrTail: string[];
  /** When the restart happens; undefined when the client gave up. */
  restartInMs: number | undefined;
}

/** What the client needs from the editor. */
export interface ClientHost {
  /** A line for the log: the client's own notes (and the server's stderr without serverLine). */
  log(line: string): void;
  /** A line the server wrote to stderr. */
  serverLine?(line: string): void;
  /** A running server died. */
  serverCrashed(info: CrashInfo): void;
  /**
   * Answers bottle/egressApproval; the server is told the client answers
   * (capabilities.egressApproval) only when this is given. The token is
   * cancelled when the server stops waiting.
   */
  approveEgress?(p: EgressApprovalParams, token: CancellationToken): Promise<EgressApprovalResult>;
}

export interface Backoff {
  /** Delay of the first restart; each next one doubles, up to maxMs. */
  initialMs: number;
  maxMs: number;
  /** Consecutive crashes after which the client stops restarting. */
  maxRestarts: number;
  /** A server that ran this long resets the crash count. */
  stableMs: number;
}

export const defaultBackoff: Backoff = { initialMs: 1000, maxMs: 30_000, maxRestarts: 5, stableMs: 60_000 };

export interface ClientOptions {
  server: () => ServerSpec;
  host: ClientHost;
  clientInfo: ClientInfo;
  backoff?: Backoff;
  /** Bounds the initialize handshake (the server reaps orphans first). */
  initializeTimeoutMs?: number;
  /** Bounds shutdown: the server tears every bottle down before answering. */
  shutdownTimeoutMs?: number;
  /**
   * The server is a forwarder to a daemon that keeps persistent bottles:
   * its end is the end of a connection, not of the bottles.
   */
  remote?: () => boolean;
}

export type ClientState = 'stopped' | 'starting' | 'running';

/** The server could not be started, or died before the handshake ended. */
export class ServerStartError extends Error {
  constructor(
    message: string,
    readonly stderrTail: string[] = [],
  ) {
    super(message);
    this.name = 'ServerStartError';
  }
}

/** The server stopped while a request was in flight. */
export class ServerStoppedError extends Error {
  constructor(message = 'bottle-rpc stopped') {
    super(message);
    this.name = 'ServerStoppedError';
  }
}

interface Running {
  proc: ChildProcess;
  connection: MessageConnection;
  init: InitializeResult;
  startedAt: number;
}

const stderrLines = 40;
const workDoneProgress = new ProgressType<WorkDoneProgress>();

export class BottleClient implements ExecChannel {
  private readonly backoff: Backoff;
  private running: Running | undefined;
  private starting: Promise<Running> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private crashes = 0;
  private disposed = false;
  private progressTokens = 0;
  /** Processes being stopped on purpose: their exit is no crash. */
  private readonly stopping = new Set<ChildProcess>();
  private readonly sinks = new Map<string, ExecSink>();
  /** Output of execs an attach answered with, until a sink claims it. */
  private readonly hold = new OutputHold();
  /** Sessions this connection is attached to: started or attached here. */
  private readonly attachedSessions = new Set<string>();

  private readonly stateEmitter = new Emitter<ClientState>();
  private readonly egressEmitter = new Emitter<EgressParams>();
  private readonly logEmitter = new Emitter<LogMessageParams>();
  private readonly exitEmitter = new Emitter<ExitParams>();
  private readonly sessionStateEmitter = new Emitter<SessionStateParams>();
  /** The server's state changed. */
  readonly onDidChangeState: Event<ClientState> = this.stateEmitter.event;
  /** A bottle's egress proxy decided on or closed a connection. */
  readonly onDidEgress: Event<EgressParams> = this.egressEmitter.event;
  /** window/logMessage. */
  readonly onDidLogMessage: Event<LogMessageParams> = this.logEmitter.event;
  /** An exec ended (after its sink heard of it). */
  readonly onDidExitExec: Event<ExitParams> = this.exitEmitter.event;
  /** bottle/sessionState: a session this connection is attached to changed state. */
  readonly onDidChangeSessionState: Event<SessionStateParams> = this.sessionStateEmitter.event;

  constructor(private readonly options: ClientOptions) {
    this.backoff = options.backoff ?? defaultBackoff;
  }

  get state(): ClientState {
    if (this.running) {
      return 'running';
    }
    return this.starting ? 'starting' : 'stopped';
  }

  /** The capabilities of the running server, if one runs. */
  get capabilities(): InitializeResult['capabilities'] | undefined {
    return this.running?.init.capabilities;
  }

  /** The running server's pid, if one runs. */
  get serverPid(): number | undefined {
    return this.running?.proc.pid;
  }

  /** Starts the server when none runs (a restart pending happens now). */
  async ready(): Promise<Running> {
    if (this.disposed) {
      throw new ServerStoppedError('the Bottle extension is shutting down');
    }
    if (this.running) {
      return this.running;
    }
    if (!this.starting) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.starting = this.launch().then(
        (r) => {
          this.starting = undefined;
          return r;
        },
        (err: unknown) => {
          this.starting = undefined;
          this.stateEmitter.fire('stopped');
          throw err;
        },
      );
      this.stateEmitter.fire('starting');
    }
    return this.starting;
  }

  // --- requests ---------------------------------------------------------------

  agents(params: AgentsParams): Promise<AgentsResult> {
    return this.request(Method.agents, params);
  }

  plan(params: PlanParams, token?: CancellationToken): Promise<PlanResult> {
    return this.request(Method.plan, params, token);
  }

  /**
   * Starts a bottle. onProgress gets the server's work-done progress;
   * cancelling the token makes the server undo the start.
   */
  async start(
    params: Omit<StartParams, 'workDoneToken'>,
    onProgress?: (p: WorkDoneProgress) => void,
    token?: CancellationToken,
  ): Promise<StartResult> {
    const { connection } = await this.ready();
    const workDoneToken = `start-${++this.progressTokens}`;
    const sub = onProgress ? connection.onProgress(workDoneProgress, workDoneToken, onProgress) : undefined;
    try {
      const res = await this.request<StartResult>(Method.start, { ...params, workDoneToken }, token);
      // The connection that starts a session is attached to it.
      this.attachedSessions.add(res.session);
      return res;
    } finally {
      sub?.dispose();
    }
  }

  /**
   * Starts a process; its output and exit go to sink, which is registered
   * as the answer arrives, before any output of the exec can.
   */
  async exec(params: ExecParams, sink: ExecSink, token?: CancellationToken): Promise<string> {
    const { connection } = await this.ready();
    const res = await stoppedAsError(
      connection.sendRequest<ExecResult>(Method.exec, params, token ?? CancellationToken.None),
    );
    // claim: output an attach in flight held for it comes first.
    this.claim(res.exec, sink);
    return res.exec;
  }

  cp(params: CpParams, token?: CancellationToken): Promise<CpResult> {
    return this.request(Method.cp, params, token);
  }

  /** Copies a file or folder out of a bottle to a host path. */
  cpOut(params: CpOutParams, token?: CancellationToken): Promise<CpOutResult> {
    return this.request(Method.cpOut, params, token);
  }

  /** What the agent changed since the start (a session started with copyGit). */
  changes(params: ChangesParams, token?: CancellationToken): Promise<ChangesResult> {
    return this.request(Method.changes, params, token);
  }

  /** Brings the agent's work home as a branch of the session's cwd. */
  fetch(params: FetchParams, token?: CancellationToken): Promise<FetchResult> {
    return this.request(Method.fetch, params, token);
  }

  /** Closes a session; the result counts the work it took with it. */
  async close(session: string): Promise<CloseResult> {
    // An older server answers null.
    return (await this.request<CloseResult | null>(Method.close, { session } satisfies CloseParams)) ?? {};
  }

  /** Adds entries to a session's allowlist; the result is the allowlist after. */
  allow(session: string, entries: string[]): Promise<AllowlistResult> {
    return this.request(Method.allow, { session, entries } satisfies AllowParams);
  }

  /** Takes entries off a session's allowlist, for new connections. */
  disallow(session: string, entries: string[]): Promise<AllowlistResult> {
    return this.request(Method.disallow, { session, entries } satisfies DisallowParams);
  }

  /**
   * Attaches this connection to a session (started elsewhere, or before a
   * reload). Every exec of the answer has its replay held: claim each one
   * that gets a terminal, release the others.
   */
  async attach(session: string): Promise<AttachResult> {
    await this.ready();
    this.hold.begin();
    let execs: string[] = [];
    try {
      const res = await this.request<AttachResult>(Method.attach, { session } satisfies AttachParams);
      execs = res.session.execs.map((e) => e.exec);
      this.attachedSessions.add(session);
      return res;
    } finally {
      for (const [exec, items] of this.hold.end(execs)) {
        this.drop(exec, items);
      }
    }
  }

  /** This connection stops getting the session's output; the session stays. */
  async detach(session: string): Promise<void> {
    await this.request(Method.detach, { session } satisfies DetachParams);
    this.attachedSessions.delete(session);
  }

  /** Whether this connection is attached to session. */
  isAttached(session: string): boolean {
    return this.attachedSessions.has(session);
  }

  /** Gives an exec's output to sink: first what attach held for it. */
  claim(exec: string, sink: ExecSink): void {
    this.sinks.set(exec, sink);
    for (const item of this.hold.take(exec)) {
      this.route(exec, item);
    }
  }

  /** Nothing (new) will show this exec: what was held is acknowledged and dropped. */
  release(exec: string): void {
    this.drop(exec, this.hold.take(exec));
  }

  /** The exec's sink is gone (its terminal was detached): its output is dropped from now on. */
  forget(exec: string): void {
    this.sinks.delete(exec);
  }

  /** The sessions of the running server; none when no server runs. */
  async list(): Promise<ListResult> {
    if (!this.running) {
      return { sessions: [] };
    }
    return this.request(Method.list, {});
  }

  private async request<R>(method: string, params: object, token?: CancellationToken): Promise<R> {
    const { connection } = await this.ready();
    return stoppedAsError(connection.sendRequest<R>(method, params, token ?? CancellationToken.None));
  }

  // --- ExecChannel: notifications, dropped when no server runs ----------------

  input(exec: string, data: Uint8Array): void {
    this.notify(Method.input, { exec, data: Buffer.from(data).toString('base64') } satisfies InputParams);
  }

  resize(exec: string, cols: number, rows: number): void {
    this.notify(Method.resize, { exec, cols, rows } satisfies ResizeParams);
  }

  ack(exec: string, bytes: number): void {
    this.notify(Method.ack, { exec, bytes } satisfies AckParams);
  }

  kill(exec: string): void {
    this.notify(Method.kill, { exec } satisfies KillParams);
  }

  private notify(method: string, params: object): void {
    const conn = this.running?.connection;
    if (!conn) {
      return;
    }
    conn.sendNotification(method, params).catch((err: unknown) => {
      this.options.host.log(`${method} not sent: ${String(err)}`);
    });
  }

  // --- lifecycle ----------------------------------------------------------------

  /**
   * Stops the server gracefully: shutdown (every bottle is torn down), exit,
   * and a signal if it lingers. The next request starts a new one.
   */
  async stop(): Promise<void> {
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const r = this.running ?? (await this.starting?.catch(() => undefined));
    if (!r) {
      return;
    }
    this.stopping.add(r.proc);
    const exited = new Promise<void>((resolve) => {
      if (r.proc.exitCode !== null || r.proc.signalCode !== null) {
        resolve();
      } else {
        r.proc.once('exit', () => resolve());
      }
    });
    try {
      await withTimeout(r.connection.sendRequest(Method.shutdown), this.options.shutdownTimeoutMs ?? 150_000);
      await r.connection.sendNotification(Method.exit);
    } catch (err) {
      this.options.host.log(`shutdown: ${String(err)}`);
    }
    r.proc.stdin?.end();
    if (!(await settlesWithin(exited, 10_000))) {
      // SIGTERM still makes the server tear its bottles down.
      r.proc.kill('SIGTERM');
      if (!(await settlesWithin(exited, 10_000))) {
        r.proc.kill('SIGKILL');
      }
    }
    await exited;
  }

  /** Stops the server for good. */
  async dispose(): Promise<void> {
    if (this.disposed) {
      return;
    }
    await this.stop();
    this.disposed = true;
    this.stateEmitter.dispose();
    this.egressEmitter.dispose();
    this.logEmitter.dispose();
    this.exitEmitter.dispose();
    this.sessionStateEmitter.dispose();
  }

  private async launch(): Promise<Running> {
    const spec = this.options.server();
    const host = this.options.host;
    host.log(`starting ${spec.command} ${spec.args.join(' ')}`);
    const proc = spawn(spec.command, spec.args, { env: spec.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let partial = '';
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (host.serverLine) {
          host.serverLine(line);
        } else {
          host.log(line);
        }
        tail.push(line);
        if (tail.length > stderrLines) {
          tail.shift();
        }
      }
    });

    const connection = createMessageConnection(
      new StreamMessageReader(proc.stdout),
      new StreamMessageWriter(proc.stdin),
    );
    connection.onNotification(Method.output, (p: OutputParams) => {
      this.route(p.exec, { kind: 'output', data: Buffer.from(p.data, 'base64'), resync: p.resync === true });
    });
    connection.onNotification(Method.execExit, (p: ExitParams) => this.route(p.exec, { kind: 'exit', params: p }));
    connection.onNotification(Method.sessionState, (p: SessionStateParams) => {
      if (p.state === 'closed') {
        this.attachedSessions.delete(p.session);
      }
      this.sessionStateEmitter.fire(p);
    });
    connection.onNotification(Method.egress, (p: EgressParams) => {
      this.egressEmitter.fire(p);
    });
    connection.onNotification(Method.logMessage, (p: LogMessageParams) => {
      this.logEmitter.fire(p);
    });
    const approve = host.approveEgress?.bind(host);
    if (approve) {
      connection.onRequest(Method.egressApproval, (p: EgressApprovalParams, token: CancellationToken) => approve(p, token));
    }
    connection.onError(([err]) => host.log(`connection: ${err.message}`));
    connection.listen();

    let initialized = false;
    const died = new Promise<never>((_, reject) => {
      proc.once('error', (err) => {
        reject(new ServerStartError(`could not run ${spec.command}: ${err.message}`));
      });
      proc.once('exit', (code, signal) => {
        connection.dispose();
        const r = this.running?.proc === proc ? this.running : undefined;
        if (r) {
          this.running = undefined;
          this.attachedSessions.clear();
          this.hold.clear();
        }
        this.endExecs(proc);
        const deliberate = this.stopping.delete(proc);
        if (!initialized) {
          reject(new ServerStartError(`bottle-rpc exited during start-up (${describeExit(code, signal)})`, [...tail]));
          return;
        }
        host.log(`bottle-rpc exited (${describeExit(code, signal)})`);
        if (!deliberate && !this.disposed && r) {
          this.crashed(r, code, signal, [...tail]);
        }
        this.stateEmitter.fire('stopped');
      });
    });
    died.catch(() => undefined); // observed through the race below

    try {
      const params: InitializeParams = {
        clientInfo: this.options.clientInfo,
        ...(approve ? { capabilities: { egressApproval: true } } : {}),
      };
      const init = await Promise.race([
        withTimeout(
          connection.sendRequest<InitializeResult>(Method.initialize, params),
          this.options.initializeTimeoutMs ?? 60_000,
        ),
        died,
      ]);
      await connection.sendNotification(Method.initialized, {});
      initialized = true;
      const r: Running = { proc, connection, init, startedAt: Date.now() };
      this.running = r;
      host.log(`connected to ${init.serverInfo.name} ${init.serverInfo.version} (pid ${proc.pid})`);
      this.stateEmitter.fire('running');
      return r;
    } catch (err) {
      this.stopping.add(proc);
      connection.dispose();
      proc.kill('SIGTERM');
      if (err instanceof ServerStartError) {
        throw err;
      }
      throw new ServerStartError(`bottle-rpc did not answer initialize: ${errorMessage(err)}`, [...tail]);
    }
  }

  /** Hands an exec's output or end to its sink, to the hold, or drops it. */
  private route(exec: string, item: Held): void {
    const sink = this.sinks.get(exec);
    if (sink) {
      if (item.kind === 'output') {
        sink.output(exec, item.data, item.resync);
      } else {
        this.execEnded(item.params);
      }
      return;
    }
    if (!this.hold.keep(exec, item)) {
      this.drop(exec, [item]);
    }
  }

  /** Output nobody shows is acknowledged, so it never holds its process back. */
  private drop(exec: string, items: Held[]): void {
    const bytes = heldBytes(items);
    if (bytes > 0) {
      this.ack(exec, bytes);
    }
    for (const item of items) {
      if (item.kind === 'exit') {
        this.exitEmitter.fire(item.params);
      }
    }
  }

  private execEnded(p: ExitParams): void {
    const sink = this.sinks.get(p.exec);
    this.sinks.delete(p.exec);
    sink?.exit(p);
    this.exitEmitter.fire(p);
  }

  /** Ends every exec of a server that is gone. */
  private endExecs(proc: ChildProcess): void {
    if (this.running && this.running.proc !== proc) {
      return;
    }
    const error = this.options.remote?.()
      ? 'the connection to the bottle daemon ended; the bottle may still run'
      : 'bottle-rpc stopped, and its bottles with it';
    for (const exec of [...this.sinks.keys()]) {
      this.execEnded({ exec, code: -1, error });
    }
  }

  private crashed(r: Running, code: number | null, signal: NodeJS.Signals | null, stderrTail: string[]): void {
    if (Date.now() - r.startedAt >= this.backoff.stableMs) {
      this.crashes = 0;
    }
    this.crashes++;
    let restartInMs: number | undefined;
    if (this.crashes <= this.backoff.maxRestarts) {
      restartInMs = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** (this.crashes - 1));
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        // A new server also reaps the bottles the dead one left behind.
        this.ready().catch((err: unknown) => this.options.host.log(`restart failed: ${errorMessage(err)}`));
      }, restartInMs);
    }
    this.options.host.serverCrashed({ code, signal, stderrTail, restartInMs });
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `exit code ${code}`;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function settlesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const done = await Promise.race([p.then(() => true), timedOut]);
  clearTimeout(timer);
  return done;
}

/** Turns the rejection of a request whose server died into ServerStoppedError. */
async function stoppedAsError<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (
      (err instanceof ResponseError && err.code === ErrorCodes.PendingResponseRejected) ||
      err instanceof ConnectionError
    ) {
      throw new ServerStoppedError();
    }
    throw err;
  }
}
