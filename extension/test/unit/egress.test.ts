import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EgressWarnings } from '../../src/egress';
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
    assert.equal(w.warning(refused('s1', 'evil.test'), 'claude'), 'Bottle claude: connection to evil.test refused (default-deny)');
    now = 1000;
    assert.equal(w.warning(refused('s1', 'evil.test'), 'claude'), undefined);
    assert.equal(w.warning(refused('s1', 'other.test', 80), 'claude'), undefined);
    now = 31_000;
    assert.equal(
      w.warning(refused('s1', 'x.test', 8080), 'claude'),
      'Bottle claude: connection to x.test:8080 refused (default-deny) (2 more refused since the last warning)',
    );
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
