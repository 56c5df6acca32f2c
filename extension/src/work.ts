// The agent's work as the extension keeps track of it: how many files and
// commits each bottle changed (the Bottles view shows them), what the last
// Fetch brought home, and whether a close would lose work. No vscode import.

import { createHash } from 'node:crypto';
import { CancellationTokenSource, Emitter, ErrorCodes, ResponseError, type Event } from 'vscode-jsonrpc';
import { errorMessage, type BottleClient } from './client';
import type { ChangesResult, FetchResult, SessionInfo, Unfetched } from './protocol';

/** The part of the client the work model uses. */
export type WorkSource = Pick<BottleClient, 'changes' | 'onDidChangeSessionState' | 'onDidExitExec'>;

/** The part of the session list the work model uses. */
export interface SessionList {
  readonly live: SessionInfo[];
  readonly onDidChange: Event<void>;
}

/** What a bottle changed since its start. */
export interface WorkCount {
  commits: number;
  files: number;
}

/**
 * The session has no git to ask about: started without copyGit (the
 * server's kind noGit), or a server that predates bottle/changes.
 */
export function isNoGit(err: unknown): boolean {
  if (!(err instanceof ResponseError)) {
    return false;
  }
  const kind = (err.data as { kind?: unknown } | undefined)?.kind;
  return kind === 'noGit' || err.code === ErrorCodes.MethodNotFound;
}

/** "2 commits, 3 files": what the Bottles view and the questions say. */
export function describeCount(c: WorkCount): string {
  const commits = c.commits === 1 ? '1 commit' : `${c.commits} commits`;
  const files = c.files === 1 ? '1 file' : `${c.files} files`;
  return `${commits}, ${files}`;
}

export function countOf(c: Pick<ChangesResult, 'commits' | 'files'> | Unfetched): WorkCount {
  return {
    commits: typeof c.commits === 'number' ? c.commits : c.commits.length,
    files: typeof c.files === 'number' ? c.files : c.files.length,
  };
}

export function isEmpty(c: WorkCount): boolean {
  return c.commits === 0 && c.files === 0;
}

/** What a fetch made, for the message that offers to check it out. */
export function describeFetch(r: FetchResult): string {
  if (!r.branch) {
    return 'Nothing to fetch: the bottle has no commits or changes since its start.';
  }
  const commits = r.commits === 1 ? '1 commit' : `${r.commits} commits`;
  const extra = r.uncommitted ? ' (the last one holds the uncommitted work)' : '';
  return `Branch ${r.branch} has ${commits} on top of ${r.base.slice(0, 8)}${extra}.`;
}

/**
 * A branch name the extension passes to git checkout: one the server made,
 * refused if git could read it as an option.
 */
export function checkoutable(branch: string): boolean {
  return branch.length > 0 && !branch.startsWith('-') && !/[\s\0]/.test(branch);
}

/**
 * Identifies a state of the agent's work: its head, its files and the diff
 * of them, so that an edit after a fetch counts as unfetched.
 */
export function fingerprint(c: ChangesResult): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([c.base, c.head, c.files, c.diff ?? '', c.truncated ?? false]));
  return h.digest('hex');
}

/**
 * The preflight's line about the workspace's .git: copied in (its history
 * is what Review Changes and Fetch Changes as Branch compare with), or why
 * not.
 */
export function gitPlanLine(from: string, workspace: string | undefined, copied: boolean): string {
  if (copied) {
    return `  git: ${from} → ${workspace ? `${workspace}/.git` : '.git in the workspace'} (the history Review Changes and Fetch Changes compare with)`;
  }
  return 'Not copied in: .git (setting bottle.copyGit is off): the agent has no history, and its work cannot be reviewed or fetched as a branch.';
}

/** The close question's detail: what goes with the bottle, and how to keep it. */
export function closeDetail(s: Pick<SessionInfo, 'session'>): string {
  return [
    `Closing removes bottle ${s.session}: its processes end, its containers, networks and images are removed, and the agent's edits in the bottle go with them.`,
    'Fetch Changes as Branch brings the work home as a branch of your repository; Copy out of Bottle... copies files out.',
  ].join('\n');
}

/** How long the question before a close waits for bottle/changes. */
export const closeCheckMs = 15_000;

/**
 * Counts per session, kept current: asked when a session becomes ready or
 * first shows up, and after each of its processes exits. A session without
 * git is remembered as such and not asked again.
 */
export class WorkCounts {
  private readonly counts = new Map<string, WorkCount | 'noGit'>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  /** The fingerprint of each session's work at its last fetch. */
  private readonly fetchedAt = new Map<string, string>();
  private readonly changed = new Emitter<void>();
  readonly onDidChange: Event<void> = this.changed.event;
  private readonly subs: { dispose(): void }[];

  constructor(
    private readonly client: WorkSource,
    private readonly sessions: SessionList,
    private readonly log: (line: string) => void,
  ) {
    this.subs = [
      client.onDidChangeSessionState((p) => {
        if (p.state === 'ready') {
          void this.refresh(p.session);
        }
      }),
      client.onDidExitExec((p) => {
        const s = sessionOfExec(p.exec, this.sessions.live);
        if (s) {
          void this.refresh(s);
        }
      }),
      sessions.onDidChange(() => this.sessionsChanged()),
    ];
  }

  /** The session's counts; undefined while unknown or when it has no git. */
  get(session: string): WorkCount | undefined {
    const c = this.counts.get(session);
    return c === 'noGit' ? undefined : c;
  }

  /**
   * Asks the server again. A call while one runs for the session makes one
   * more run after it.
   */
  refresh(session: string): Promise<void> {
    const current = this.running.get(session);
    if (current) {
      this.again.add(session);
      return current;
    }
    const run = this.load(session).finally(() => {
      this.running.delete(session);
      if (this.again.delete(session)) {
        void this.refresh(session);
      }
    });
    this.running.set(session, run);
    return run;
  }

  /** Records what a fetch brought home: the work as it is right after it. */
  async fetched(session: string): Promise<void> {
    try {
      const c = await this.client.changes({ session, diff: true });
      this.fetchedAt.set(session, fingerprint(c));
      this.set(session, countOf(c));
    } catch (err) {
      this.log(`bottle/changes of ${session} after the fetch: ${errorMessage(err)}`);
    }
  }

  /**
   * The work a close would take with it: undefined when there is none, it
   * was all fetched, or the session has no git. Other errors are thrown.
   */
  async unfetched(session: string, timeoutMs = closeCheckMs): Promise<WorkCount | undefined> {
    const mark = this.fetchedAt.get(session);
    const cancel = new CancellationTokenSource();
    const timer = setTimeout(() => cancel.cancel(), timeoutMs);
    try {
      const c = await this.client.changes({ session, diff: mark !== undefined }, cancel.token);
      const count = countOf(c);
      this.set(session, count);
      if (isEmpty(count) || (mark !== undefined && fingerprint(c) === mark)) {
        return undefined;
      }
      return count;
    } catch (err) {
      if (isNoGit(err)) {
        this.set(session, 'noGit');
        return undefined;
      }
      throw err;
    } finally {
      clearTimeout(timer);
      cancel.dispose();
    }
  }

  private async load(session: string): Promise<void> {
    try {
      this.set(session, countOf(await this.client.changes({ session })));
    } catch (err) {
      if (isNoGit(err)) {
        this.set(session, 'noGit');
        return;
      }
      // The view keeps what it showed; the log says why it is stale.
      this.log(`bottle/changes of ${session}: ${errorMessage(err)}`);
    }
  }

  private set(session: string, c: WorkCount | 'noGit'): void {
    const old = this.counts.get(session);
    if (old === c || (typeof old === 'object' && typeof c === 'object' && old.commits === c.commits && old.files === c.files)) {
      return;
    }
    this.counts.set(session, c);
    this.changed.fire();
  }

  /** New ready sessions are asked about; gone ones forgotten. */
  private sessionsChanged(): void {
    const live = new Set<string>();
    for (const s of this.sessions.live) {
      live.add(s.session);
      if (s.state === 'ready' && !this.counts.has(s.session) && !this.running.has(s.session)) {
        void this.refresh(s.session);
      }
    }
    for (const session of [...this.counts.keys(), ...this.fetchedAt.keys()]) {
      if (!live.has(session)) {
        this.counts.delete(session);
        this.fetchedAt.delete(session);
      }
    }
  }

  dispose(): void {
    this.subs.forEach((s) => s.dispose());
    this.changed.dispose();
  }
}

/** The session an exec belongs to: the list's, else its id's prefix (SESSION-N). */
export function sessionOfExec(exec: string, live: SessionInfo[]): string | undefined {
  const owner = live.find((s) => s.execs.some((e) => e.exec === exec));
  if (owner) {
    return owner.session;
  }
  const dash = exec.lastIndexOf('-');
  const prefix = dash > 0 ? exec.slice(0, dash) : undefined;
  return prefix && live.some((s) => s.session === prefix) ? prefix : undefined;
}
