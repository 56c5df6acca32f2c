import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { heldBytes, OutputHold, type Held } from '../../src/hold';

const out = (s: string, resync = false): Held => ({ kind: 'output', data: new TextEncoder().encode(s), resync });
const text = (items: Held[]) => items.map((i) => (i.kind === 'output' ? new TextDecoder().decode(i.data) : `<exit ${i.params.code}>`)).join('');

describe('OutputHold', () => {
  it('keeps nothing while no attach is in flight or awaited', () => {
    const hold = new OutputHold();
    assert.equal(hold.keep('e1', out('x')), false);
  });

  it('keeps an attached exec’s replay, in order with its exit, until it is taken', () => {
    const hold = new OutputHold();
    hold.begin();
    assert.deepEqual(hold.end(['e1']), new Map());
    assert.ok(hold.keep('e1', out('replay ')));
    assert.ok(hold.keep('e1', out('live')));
    assert.ok(hold.keep('e1', { kind: 'exit', params: { exec: 'e1', code: 0 } }));
    assert.equal(text(hold.take('e1')), 'replay live<exit 0>');
    assert.deepEqual(hold.take('e1'), [], 'taken once');
    assert.equal(hold.keep('e1', out('after')), false, 'not awaited any more');
  });

  it('keeps output of unknown execs while an attach is in flight, and hands back the unawaited ones when the last answers', () => {
    const hold = new OutputHold();
    hold.begin();
    hold.begin();
    assert.ok(hold.keep('a1', out('a')));
    assert.ok(hold.keep('z9', out('zz')));
    assert.deepEqual(hold.end(['a1']), new Map(), 'another attach may still name z9');
    assert.ok(hold.keep('b1', out('b')));
    const dropped = hold.end(['b1']);
    assert.deepEqual([...dropped.keys()], ['z9']);
    assert.equal(heldBytes(dropped.get('z9')!), 2);
    assert.equal(text(hold.take('a1')), 'a');
    assert.equal(text(hold.take('b1')), 'b');
  });

  it('marks a resync chunk and counts the bytes to acknowledge', () => {
    const hold = new OutputHold();
    hold.begin();
    hold.end(['e1']);
    hold.keep('e1', out('old'));
    hold.keep('e1', out('new', true));
    const items = hold.take('e1');
    assert.deepEqual(
      items.map((i) => i.kind === 'output' && i.resync),
      [false, true],
    );
    assert.equal(heldBytes(items), 6);
  });

  it('forgets everything when the connection ends', () => {
    const hold = new OutputHold();
    hold.begin();
    hold.end(['e1']);
    hold.keep('e1', out('x'));
    hold.clear();
    assert.deepEqual(hold.take('e1'), []);
    assert.equal(hold.keep('e1', out('y')), false);
  });
});
