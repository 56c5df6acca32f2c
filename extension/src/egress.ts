// Rate-limits the warnings about refused egress: an agent retrying a
// blocked host would otherwise raise a notification per attempt; and writes
// what an agent chose (a host, a reason quoting an SNI value) escaped. No
// vscode import, so the tests drive it with their own clock.

import type { EgressParams } from './protocol';

/** The reason of a refusal the user chose in an approval (the proxy's wording). */
const deniedByTheUser = 'denied by the user';

/** A refusal to tell the user about, and what they can do about it. */
export interface EgressWarning {
  /** the notification's text, every agent-chosen string escaped */
  message: string;
  /** the allowlist entry that would let the connection through (host:port), when an allowlist entry can */
  entry?: string;
}

/** How many held-back hosts a warning names before it counts the rest. */
const namedHosts = 5;

/**
 * Why the proxy refused, in the user's words: the proxy's rule names
 * (default-deny, block:ENTRY, dlp:NAME, ...) are its own.
 */
export function refusalReason(rule: string, reason?: string): string {
  if (rule === 'default-deny') {
    return "not on this bottle's allowlist";
  }
  if (rule.startsWith('block:')) {
    return `blocked by the blocklist entry ${printable(rule.slice('block:'.length))}`;
  }
  if (rule.startsWith('dlp:secret:')) {
    return `the request carried the value of ${printable(rule.slice('dlp:secret:'.length))}, a secret`;
  }
  if (rule.startsWith('dlp:')) {
    return `the request carried what looks like a secret (${printable(rule.slice('dlp:'.length))})`;
  }
  switch (rule) {
    case 'ssrf-guard':
      return 'the name resolves to a private or loopback address and the host is not trusted';
    case 'sni-mismatch':
      return 'the TLS handshake named another host';
    case 'tls-unreadable':
      return 'the TLS handshake could not be read';
    case 'bad-request':
      return 'a malformed request';
  }
  return reason ? `${printable(rule)}: ${printable(reason)}` : printable(rule);
}

function hostPort(host: string, port: number): string {
  return port && port !== 443 ? `${host}:${port}` : host;
}

export class EgressWarnings {
  /** Per session: when the last warning was shown and the hosts refused since, in order. */
  private readonly last = new Map<string, { at: number; held: string[] }>();

  constructor(
    private readonly intervalMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Returns the warning to show for this record now, or undefined when it
   * is no refusal or one was shown for the session less than the interval
   * ago (its host is then named in the next warning). bottleName: the
   * bottle as the user knows it ("claude · myrepo").
   */
  warning(p: EgressParams, bottleName: string): EgressWarning | undefined {
    const r = p.record;
    // A connection the user refused in the approval needs no warning.
    if (r.event !== 'decision' || r.decision !== 'deny' || r.reason === deniedByTheUser) {
      return undefined;
    }
    const t = this.now();
    const target = hostPort(printable(r.host), r.port);
    const prev = this.last.get(p.session);
    if (prev && t - prev.at < this.intervalMs) {
      if (!prev.held.includes(target)) {
        prev.held.push(target);
      }
      return undefined;
    }
    this.last.set(p.session, { at: t, held: [] });
    const others = (prev?.held ?? []).filter((h) => h !== target);
    let more = '';
    if (others.length) {
      const named = others.slice(0, namedHosts).join(', ');
      const rest = others.length > namedHosts ? ` and ${others.length - namedHosts} more` : '';
      more = `; also refused since the last warning: ${named}${rest}`;
    }
    const message = `Bottle ${printable(bottleName)}: connection to ${target} refused: ${refusalReason(r.rule, r.reason)}${more}`;
    // Only a refusal of the allowlist's is undone by an entry; a host the
    // proxy names "(redacted)" is none to add.
    const entry = r.rule === 'default-deny' && r.port > 0 && r.host !== '(redacted)' ? `${r.host}:${r.port}` : undefined;
    return entry ? { message, entry } : { message };
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
