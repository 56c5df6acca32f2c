// What the tree and the status bar show: the server's sessions (from
// bottle/list, kept current by bottle/sessionState) and the starts in
// flight. No vscode import.

import { Emitter, type Event } from 'vscode-jsonrpc';
import { errorMessage, type BottleClient } from './client';
import { baseName, bottleNames } from './names';

/** The part of the client the model uses. */
export type SessionSource = Pick<
  BottleClient,
  'state' | 'list' | 'onDidChangeState' | 'onDidExitExec' | 'onDidChangeSessionState' | 'isAttached'
>;
import type { ExecInfo, SessionInfo, SessionStateParams } from './protocol';

/**
 * Where the origins are kept across window reloads (a vscode.Memento):
 * a bottle that outlives its window keeps its name and folder.
 */
export interface OriginStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

const originsKey = 'bottle.origins';

/** Where a session came from: what this window started it with. */
export interface SessionOrigin {
  /** the manifest file; undefined: the server's built-in manifest */
  manifest?: string;
  /** manifest is a file of the workspace, which Always Allow may write */
  inWorkspace: boolean;
  /** the manifest's bottle the agent runs in */
  bottle: string;
  /** the allowlist the preflight showed */
  allow: string[];
  /** the host folder copied in: the repository a fetch makes its branch in */
  cwd?: string;
}

export class Sessions {
  private sessions: SessionInfo[] = [];
  private readonly origins: Map<string, SessionOrigin>;
  /** Exited execs the user cleared from the view. */
  private readonly cleared = new Set<string>();
  private names = new Map<string, string>();
  private readonly startingAgents: string[] = [];
  private current: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private readonly changed = new Emitter<void>();
  readonly onDidChange: Event<void> = this.changed.event;

  constructor(
    private readonly client: SessionSource,
    private readonly log: (line: string) => void,
    private readonly store?: OriginStore,
  ) {
    this.origins = new Map(Object.entries(store?.get<Record<string, SessionOrigin>>(originsKey) ?? {}));
    client.onDidChangeState(() => void this.refresh());
    client.onDidExitExec(() => void this.refresh());
    client.onDidChangeSessionState((p) => this.stateChanged(p));
  }

  /** Sessions that are not closed, in start order. */
  get live(): SessionInfo[] {
    return this.sessions.filter((s) => s.state !== 'closed');
  }

  /** Agents whose bottles are starting. */
  get starting(): readonly string[] {
    return this.startingAgents;
  }

  /** Whether this window gets the session's output (started or attached it). */
  attachedHere(session: string): boolean {
    return this.client.isAttached(session);
  }

  find(session: string): SessionInfo | undefined {
    return this.sessions.find((s) => s.session === session);
  }

  /** Keeps where a session this window started came from, while it lives. */
  remember(session: string, origin: SessionOrigin): void {
    this.origins.set(session, origin);
    this.names = this.computeNames();
    this.save();
    this.changed.fire();
  }

  /**
   * The bottle's name as the user knows it: "claude · myrepo", with a
   * short id when another live bottle reads the same; the agent's for a
   * bottle whose folder this window never knew. agent: the session's
   * agent when the list does not have it yet.
   */
  name(session: string, agent?: string): string {
    const known = this.names.get(session);
    if (known) {
      return known;
    }
    // Not listed yet (a window reattaching before its first list).
    const a = this.find(session)?.agent ?? agent;
    return a ? baseName({ session, agent: a, folder: this.origins.get(session)?.cwd }) : session;
  }

  /** The host folder copied into the bottle, when this window (or one before a reload) started it. */
  folder(session: string): string | undefined {
    return this.origins.get(session)?.cwd;
  }

  /** The execs the view shows: all but the exited ones cleared. */
  shownExecs(s: SessionInfo): ExecInfo[] {
    return s.execs.filter((e) => e.running || !this.cleared.has(e.exec));
  }

  /** Takes a session's exited processes out of the view; returns how many. */
  clearExited(session: string): number {
    let n = 0;
    for (const e of this.find(session)?.execs ?? []) {
      if (!e.running && !this.cleared.has(e.exec)) {
        this.cleared.add(e.exec);
        n++;
      }
    }
    if (n) {
      this.changed.fire();
    }
    return n;
  }

  origin(session: string): SessionOrigin | undefined {
    return this.origins.get(session);
  }

  /** Shows agent as starting while start runs. */
  async track<T extends { session: string }>(agent: string, start: PromiseLike<T>): Promise<T> {
    this.startingAgents.push(agent);
    this.changed.fire();
    try {
      return await start;
    } finally {
      this.startingAgents.splice(this.startingAgents.indexOf(agent), 1);
      await this.refresh();
    }
  }

  /**
   * Reloads the list. A call while a reload runs waits for one more reload
   * after it, so that it sees what happened before the call.
   */
  refresh(): Promise<void> {
    if (!this.current) {
      this.current = this.reload().finally(() => {
        this.current = undefined;
      });
      return this.current;
    }
    this.queued ??= this.current.then(() => {
      this.queued = undefined;
      return this.refresh();
    });
    return this.queued;
  }

  /**
   * Shows the new state at once; the list then brings what came with it
   * (a ready session's container, a closed one's absence).
   */
  private stateChanged(p: SessionStateParams): void {
    const s = this.find(p.session);
    if (s) {
      this.sessions = this.sessions.map((x) => (x === s ? { ...s, state: p.state, error: p.error ?? s.error } : x));
      this.names = this.computeNames();
      this.changed.fire();
    }
    void this.refresh();
  }

  private async reload(): Promise<void> {
    try {
      this.sessions = this.client.state === 'running' ? (await this.client.list()).sessions : [];
      // A list that failed says nothing about which sessions ended.
      // A server that is not running yet (a window reloading) lists none:
      // the origins wait for the first list of a running one.
      if (this.client.state === 'running') {
        const live = new Set(this.live.map((s) => s.session));
        let gone = false;
        for (const session of this.origins.keys()) {
          if (!live.has(session)) {
            this.origins.delete(session);
            gone = true;
          }
        }
        if (gone) {
          this.save();
        }
      }
    } catch (err) {
      this.log(`bottle/list: ${errorMessage(err)}`);
      this.sessions = [];
    }
    this.names = this.computeNames();
    this.changed.fire();
  }

  private computeNames(): Map<string, string> {
    return bottleNames(this.live.map((s) => ({ session: s.session, agent: s.agent, folder: this.origins.get(s.session)?.cwd })));
  }

  private save(): void {
    void this.store?.update(originsKey, Object.fromEntries(this.origins));
  }

  dispose(): void {
    this.changed.dispose();
  }
}

/**
 * How a session is described next to its agent's name: id, runtime, its
 * state unless ready, and, when this window is not attached to it, whether
 * another one is.
 */
export function describeSession(s: SessionInfo, attachedHere = true): string {
  let where: string | undefined;
  if (!attachedHere && s.state !== 'closed') {
    where = s.attached > 0 ? 'attached elsewhere' : 'detached';
  }
  return [s.session, s.runtimeLabel, s.state === 'ready' ? undefined : s.state, where].filter(Boolean).join(' · ');
}

/**
 * The tree item's context value, which picks its actions:
 * bottle.session.STATE, with .detached when this window is not attached
 * (Attach instead of Open Terminal).
 */
export function sessionContext(s: SessionInfo, attachedHere: boolean): string {
  return `bottle.session.${s.state}${attachedHere ? '' : '.detached'}`;
}
