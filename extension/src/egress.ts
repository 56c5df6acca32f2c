// Rate-limits the warnings about refused egress: an agent retrying a
// blocked host would otherwise raise a notification per attempt. No vscode
// import, so the tests drive it with their own clock.

import type { EgressParams } from './protocol';

export class EgressWarnings {
  /** Per session: when the last warning was shown and what was held back since. */
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly intervalMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Returns the warning to show for this record now, or undefined when it
   * is no refusal or one was shown for the session less than the interval
   * ago (it is then counted into the next warning).
   */
  warning(p: EgressParams, bottleName: string): string | undefined {
    const r = p.record;
    if (r.event !== 'decision' || r.decision !== 'deny') {
      return undefined;
    }
    const t = this.now();
    const prev = this.last.get(p.session);
    if (prev && t - prev.at < this.intervalMs) {
      prev.held++;
      return undefined;
    }
    this.last.set(p.session, { at: t, held: 0 });
    const port = r.port && r.port !== 443 ? `:${r.port}` : '';
    const more = prev?.held ? ` (${prev.held} more refused since the last warning)` : '';
    return `Bottle ${bottleName}: connection to ${r.host}${port} refused (${r.rule})${more}`;
  }

  /** Forgets the sessions that are not among live, once they have closed. */
  retain(live: readonly string[]): void {
    for (const session of this.last.keys()) {
      if (!live.includes(session)) {
        this.last.delete(session);
      }
    }
  }
}
