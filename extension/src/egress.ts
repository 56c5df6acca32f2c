// Rate-limits the warnings about refused egress: an agent retrying a
// blocked host would otherwise raise a notification per attempt; and writes
// what an agent chose (a host, a reason quoting an SNI value) escaped. No
// vscode import, so the tests drive it with their own clock.

import type { EgressParams } from './protocol';

/** The reason of a refusal the user chose in an approval (the proxy's wording). */
const deniedByTheUser = 'denied by the user';

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
    // A connection the user refused in the approval needs no warning.
    if (r.event !== 'decision' || r.decision !== 'deny' || r.reason === deniedByTheUser) {
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
    return `Bottle ${printable(bottleName)}: connection to ${printable(r.host)}${port} refused (${printable(r.rule)})${more}`;
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

/**
 * Returns s fit to be shown to a person in a notification, a log or a tree
 * label: controls (C0, C1, DEL), line and paragraph separators, format
 * characters (bidi controls and other invisible ones), lone surrogates and
 * unassigned code points become `\u{...}`, and a backslash `\\`, so that an
 * agent-chosen string can neither start a fake line nor hide or reorder
 * text.
 */
export function printable(s: string): string {
  return s.replace(/[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}]/gu, (c) =>
    c === '\\' ? '\\\\' : `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`,
  );
}

/** The output channel's line for an egress record, every string escaped. */
export function egressLogLine(p: EgressParams): string {
  const r = p.record;
  const reason = r.reason ? `: ${printable(r.reason)}` : '';
  return `[egress ${printable(p.session)}] ${printable(r.decision)} ${printable(r.method)} ${printable(r.host)}:${r.port} (${printable(r.rule)}${reason})`;
}

/** The output channel's line for a change of a bottle's egress policy. */
export function policyLogLine(p: EgressParams): string {
  const r = p.record;
  const by = r.client ? ` by ${printable(r.client)}` : '';
  const what = r.decision === 'allow' ? printable(r.change ?? '') : `refused: ${printable(r.reason ?? '')}`;
  return `[egress ${printable(p.session)}] policy${by}: ${what}`;
}
