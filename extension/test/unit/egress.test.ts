import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EgressWarnings, egressLogLine, printable } from '../../src/egress';
import type { EgressParams } from '../../src/protocol';

function refused(session: string, host: string, port = 443): EgressParams {
  return {
    session,
    record: { time: '', event: 'decision', method: 'CONNECT', host, port, decision: 'deny', rule: 'default-deny' },
  };
}

describe('EgressWarnings', () => {
  it('warns at once, then holds refusals back for the interval and counts them into the next warning', () => {
    let now = 0;
    const w = new EgressWarnings(30_000, () => now);
    assert.deepEqual(w.warning(refused('s1', 'evil.test'), 'claude · proj'), {
      message: "Bottle claude · proj: connection to evil.test refused: not on this bottle's allowlist",
      entry: 'evil.test:443',
    });
    now = 1000;
    assert.equal(w.warning(refused('s1', 'evil.test'), 'claude · proj'), undefined);
    assert.equal(w.warning(refused('s1', 'other.test', 80), 'claude · proj'), undefined);
    assert.equal(w.warning(refused('s1', 'other.test', 80), 'claude · proj'), undefined);
    now = 31_000;
    assert.deepEqual(w.warning(refused('s1', 'x.test', 8080), 'claude · proj'), {
      message:
        "Bottle claude · proj: connection to x.test:8080 refused: not on this bottle's allowlist; also refused since the last warning: evil.test, other.test:80",
      entry: 'x.test:8080',
    });
  });

  it('names five held-back hosts and counts the rest', () => {
    let now = 0;
    const w = new EgressWarnings(30_000, () => now);
    assert.ok(w.warning(refused('s1', 'first.test'), 'sh'));
    for (let i = 1; i <= 7; i++) {
      assert.equal(w.warning(refused('s1', `h${i}.test`), 'sh'), undefined);
    }
    now = 31_000;
    assert.equal(
      w.warning(refused('s1', 'h1.test'), 'sh')?.message,
      "Bottle sh: connection to h1.test refused: not on this bottle's allowlist; also refused since the last warning: h2.test, h3.test, h4.test, h5.test, h6.test and 1 more",
    );
  });

  it('says why in the user’s words, and offers an allowlist entry only for what one would let through', () => {
    const w = new EgressWarnings(0, () => 0);
    const cases: [string, string | undefined, RegExp][] = [
      ['block:*.evil.test', undefined, /blocked by the blocklist entry \*\.evil\.test$/],
      ['dlp:aws-key', undefined, /carried what looks like a secret \(aws-key\)$/],
      ['dlp:secret:GITHUB_TOKEN', undefined, /carried the value of GITHUB_TOKEN, a secret$/],
      ['ssrf-guard', undefined, /private or loopback address/],
    ];
    for (const [rule, reason, want] of cases) {
      const p = refused('s1', 'h.test');
      p.record.rule = rule;
      p.record.reason = reason;
      const got = w.warning(p, 'sh');
      assert.match(got?.message ?? '', want, rule);
      assert.equal(got?.entry, undefined, rule);
    }
  });

  it('does not warn of a connection the user refused in the approval, nor count it', () => {
    const w = new EgressWarnings(30_000, () => 0);
    const denied = refused('s1', 'github.com');
    denied.record.reason = 'denied by the user';
    assert.equal(w.warning(denied, 'claude'), undefined);
    assert.equal(w.warning(refused('s1', 'x.test'), 'claude')?.message, "Bottle claude: connection to x.test refused: not on this bottle's allowlist");
  });

  it('rate-limits each session on its own', () => {
    const w = new EgressWarnings(30_000, () => 0);
    assert.ok(w.warning(refused('s1', 'a.test'), 'one'));
    assert.ok(w.warning(refused('s2', 'a.test'), 'two'));
  });

  it('forgets closed sessions and keeps holding back live ones', () => {
    const w = new EgressWarnings(30_000, () => 0);
    assert.ok(w.warning(refused('s1', 'a.test'), 'one'));
    assert.ok(w.warning(refused('s2', 'a.test'), 'two'));
    w.retain(['s2']);
    assert.ok(w.warning(refused('s1', 'a.test'), 'one'), 's1 was forgotten, so it warns at once');
    assert.equal(w.warning(refused('s2', 'a.test'), 'two'), undefined);
  });

  it('ignores allowed connections and close records', () => {
    const w = new EgressWarnings(30_000, () => 0);
    const allowed = refused('s1', 'api.test');
    allowed.record.decision = 'allow';
    const closed = refused('s1', 'api.test');
    closed.record.event = 'close';
    assert.equal(w.warning(allowed, 'a'), undefined);
    assert.equal(w.warning(closed, 'a'), undefined);
  });
});

// What an agent can put in a host or, through an SNI value, a reason: a
// newline and a fake allow line, an escape that erases a line, bidi
// controls, a C1 control, DEL and a zero-width joiner.
const hostile =
  'evil.test\r\n[egress s1] allow CONNECT api.anthropic.com:443 (api.anthropic.com)\x1b[2K\u202egro.live\u202c\u2066x\u2069\u200f\u061c\u0085\u009b\x7f\u200d\u2028';

/** Every character a person would not see as itself. */
const unseen = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}]/u;

describe('printable', () => {
  it('leaves plain text alone', () => {
    for (const s of ['api.anthropic.com', 'not on the allowlist', 'bücher.example', '']) {
      assert.equal(printable(s), s);
    }
  });

  it('escapes controls, separators, bidi and other format characters, and backslashes', () => {
    assert.equal(printable('a\nb\x1b[2K\u202ec\\u{a}'), 'a\\u{a}b\\u{1b}[2K\\u{202e}c\\\\u{a}');
    const out = printable(hostile);
    assert.doesNotMatch(out, unseen);
    for (const c of ['\\u{a}', '\\u{d}', '\\u{1b}', '\\u{202e}', '\\u{2066}', '\\u{200f}', '\\u{61c}', '\\u{85}', '\\u{9b}', '\\u{7f}', '\\u{200d}', '\\u{2028}']) {
      assert.ok(out.includes(c), `${c} is not shown in ${out}`);
    }
  });
});

describe('egress text an agent chose', () => {
  const p: EgressParams = {
    session: 's1',
    record: { time: '', event: 'decision', method: 'CONNECT', host: hostile, port: 443, decision: 'deny', rule: 'sni-mismatch', reason: `TLS names ${hostile}` },
  };

  it('reaches the notification escaped, on one line', () => {
    const msg = new EgressWarnings(30_000, () => 0).warning(p, 'claude')?.message;
    assert.ok(msg?.startsWith('Bottle claude: connection to evil.test\\u{d}\\u{a}[egress s1]'), msg);
    assert.doesNotMatch(msg ?? '', unseen);
  });

  it('reaches the log escaped, on one line', () => {
    const line = egressLogLine(p);
    assert.ok(line.startsWith('[egress s1] deny CONNECT evil.test\\u{d}\\u{a}[egress s1] allow'), line);
    assert.ok(line.includes('(sni-mismatch: TLS names evil.test'), line);
    assert.doesNotMatch(line, unseen);
  });
});
