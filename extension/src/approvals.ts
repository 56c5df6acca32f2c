// Answers bottle/egressApproval: the server asks whether a bottle may reach
// a host its allowlist does not name, and the user answers in a
// notification. No vscode import: the editor is reached through
// ApprovalHost, so the tests drive the flow with a fake window.

import type { CancellationToken } from 'vscode-jsonrpc';
import { errorMessage } from './client';
import { printable } from './egress';
import type { EgressApprovalParams, EgressApprovalResult, EgressParams } from './protocol';
import type { SessionOrigin } from './sessions';

/** The notification's buttons. */
export const Choice = {
  once: 'Allow Once',
  session: 'Allow for This Bottle',
  always: 'Always Allow',
  deny: 'Deny',
} as const;

/** What the approvals need from the editor and the server. */
export interface ApprovalHost {
  /** Shows message with buttons; resolves to the one picked, undefined when the notification was dismissed. */
  ask(message: string, buttons: string[]): PromiseLike<string | undefined>;
  /** The agent a session runs, for the question. */
  agent(session: string): string | undefined;
  /** Where a session came from, when this window started it. */
  origin(session: string): SessionOrigin | undefined;
  /** Adds entry to bottle's allowlist in the manifest file; fallback as in addAllowEntry. */
  writeManifest(file: string, bottle: string, entry: string, fallback: readonly string[]): Promise<void>;
  /** bottle/allow: for an answer that comes after the server stopped waiting for it. */
  allow(session: string, entries: string[]): Promise<unknown>;
  /** Tells the user something went wrong. */
  error(message: string): void;
  log(line: string): void;
}

const expired = Symbol('expired');

export class Approvals {
  /** The questions on screen, by session and host:port: what ends their wait. */
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(private readonly host: ApprovalHost) {}

  /**
   * Hears the bottle's egress records. The proxy decides a held
   * connection itself when the time to answer runs out, and the server
   * then stops waiting without telling the client: a decision record for
   * a host being asked about ends the question as if it was cancelled.
   */
  egress(p: EgressParams): void {
    const r = p.record;
    if (r.event === 'decision') {
      for (const done of this.waiting.get(questionKey(p.session, r.host, r.port)) ?? []) {
        done();
      }
    }
  }

  /**
   * Asks the user about one connection. Dismissing the notification
   * denies. An answer after the server gave up waiting (the request was
   * cancelled) still adds the entry for new connections when it allows
   * them for the bottle.
   */
  async answer(p: EgressApprovalParams, token?: CancellationToken): Promise<EgressApprovalResult> {
    const entry = `${p.host}:${p.port}`;
    const origin = this.host.origin(p.session);
    const persist = origin?.manifest !== undefined && origin.inWorkspace ? origin : undefined;
    const buttons: string[] = [Choice.once, Choice.session, ...(persist ? [Choice.always] : []), Choice.deny];
    const agent = this.host.agent(p.session) ?? 'An agent';
    const message = `${printable(agent)} (bottle ${printable(p.session)}) wants to reach ${printable(p.host)}:${p.port}`;
    const picked = Promise.resolve(this.host.ask(message, buttons));
    const key = questionKey(p.session, p.host, p.port);
    let done: () => void = () => undefined;
    const gaveUp = new Promise<typeof expired>((resolve) => {
      done = () => resolve(expired);
      if (token?.isCancellationRequested) {
        done();
      }
      token?.onCancellationRequested(done);
    });
    const waiting = this.waiting.get(key) ?? new Set();
    waiting.add(done);
    this.waiting.set(key, waiting);
    let first: string | undefined | typeof expired;
    try {
      first = await Promise.race([picked, gaveUp]);
    } finally {
      waiting.delete(done);
      if (waiting.size === 0 && this.waiting.get(key) === waiting) {
        this.waiting.delete(key);
      }
    }
    if (first === expired) {
      void picked.then((late) => this.late(p, entry, late, persist));
      return { decision: 'deny' };
    }
    switch (first) {
      case Choice.once:
        return { decision: 'allowOnce' };
      case Choice.session:
        return { decision: 'allowSession' };
      case Choice.always:
        if (persist) {
          await this.persist(persist, entry);
        }
        return { decision: 'allowSession' };
      default:
        return { decision: 'deny' };
    }
  }

  /** An answer the server no longer waited for: its connection was refused. */
  private async late(p: EgressApprovalParams, entry: string, choice: string | undefined, persist: SessionOrigin | undefined): Promise<void> {
    if (choice !== Choice.session && choice !== Choice.always) {
      this.host.log(`${printable(entry)}: answered after bottle ${printable(p.session)} stopped waiting; the connection was refused`);
      return;
    }
    try {
      await this.host.allow(p.session, [entry]);
      this.host.log(`${printable(entry)}: answered late; allowed for new connections of bottle ${printable(p.session)}`);
    } catch (err) {
      this.host.error(`Could not allow ${printable(entry)} in bottle ${printable(p.session)}: ${printable(errorMessage(err))}`);
      return;
    }
    if (choice === Choice.always && persist) {
      await this.persist(persist, entry);
    }
  }

  private async persist(origin: SessionOrigin, entry: string): Promise<void> {
    const file = origin.manifest ?? '';
    try {
      await this.host.writeManifest(file, origin.bottle, entry, origin.allow);
      this.host.log(`${printable(entry)} added to bottles.${printable(origin.bottle)}.egress.allow in ${printable(file)}`);
    } catch (err) {
      this.host.error(
        `${printable(entry)} is allowed for this bottle, but not written to ${printable(file)}: ${printable(errorMessage(err))}`,
      );
    }
  }
}

function questionKey(session: string, host: string, port: number): string {
  return `${session} ${host}:${port}`;
}
