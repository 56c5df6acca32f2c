// Coming back to bottles that outlived a window: attach to each session
// and reopen a terminal for each running process that has one, filled from
// the server's replay. No vscode import: terminals are made by a
// TerminalOpener.

import { errorMessage, type BottleClient } from './client';
import type { ExecInfo, SessionInfo } from './protocol';
import type { ExecSink } from './terminal';

/** The part of the client reattaching uses. */
export type AttachSource = Pick<BottleClient, 'list' | 'attach' | 'claim' | 'release' | 'isAttached'>;

/** Makes terminals for execs that run on in a bottle. */
export interface TerminalOpener {
  /** This window already shows exec. */
  has(exec: string): boolean;
  /** A terminal bound to exec; its output is handed over at once. */
  reopen(session: SessionInfo, exec: ExecInfo): ExecSink;
}

/** The execs of a session that get a terminal again: running, with a pty. */
export function reopenable(s: SessionInfo): ExecInfo[] {
  return s.execs.filter((e) => e.running && e.tty);
}

/** Whether a session can be attached to: one that is closing or closed cannot. */
export function attachable(s: SessionInfo): boolean {
  return s.state !== 'closed' && s.state !== 'closing';
}

export class Reattacher {
  constructor(
    private readonly client: AttachSource,
    private readonly terminals: TerminalOpener,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Attaches to every session this window is not attached to and can be,
   * and reopens their terminals. Returns the sessions attached to.
   */
  async all(): Promise<string[]> {
    const { sessions } = await this.client.list();
    const done: string[] = [];
    for (const s of sessions) {
      if (!attachable(s) || this.client.isAttached(s.session)) {
        continue;
      }
      if (await this.one(s.session)) {
        done.push(s.session);
      }
    }
    return done;
  }

  /** Attaches to one session and reopens its terminals; false when that failed (logged). */
  async one(session: string): Promise<boolean> {
    let info: SessionInfo;
    try {
      info = (await this.client.attach(session)).session;
    } catch (err) {
      this.log(`bottle/attach ${session}: ${errorMessage(err)}`);
      return false;
    }
    const wanted = new Set(reopenable(info).map((e) => e.exec));
    for (const e of info.execs) {
      // Every exec of the answer has its replay held: each is claimed or released.
      if (wanted.has(e.exec) && !this.terminals.has(e.exec)) {
        this.client.claim(e.exec, this.terminals.reopen(info, e));
      } else {
        this.client.release(e.exec);
      }
    }
    return true;
  }
}
