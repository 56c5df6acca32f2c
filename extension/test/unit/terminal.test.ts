import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Screen } from '../helpers/screen';
import { ExecTerminal, type ExecChannel, type ExecTerminalOptions } from '../../src/terminal';

type Call =
  | { m: 'input'; exec: string; text: string }
  | { m: 'resize'; exec: string; cols: number; rows: number }
  | { m: 'ack'; exec: string; bytes: number }
  | { m: 'kill'; exec: string };

class FakeChannel implements ExecChannel {
  calls: Call[] = [];
  input(exec: string, data: Uint8Array): void {
    this.calls.push({ m: 'input', exec, text: new TextDecoder().decode(data) });
  }
  resize(exec: string, cols: number, rows: number): void {
    this.calls.push({ m: 'resize', exec, cols, rows });
  }
  ack(exec: string, bytes: number): void {
    this.calls.push({ m: 'ack', exec, bytes });
  }
  kill(exec: string): void {
    this.calls.push({ m: 'kill', exec });
  }
  of<M extends Call['m']>(m: M): Extract<Call, { m: M }>[] {
    return this.calls.filter((c): c is Extract<Call, { m: M }> => c.m === m);
  }
}

const size = { columns: 80, rows: 24 };

function setup(options?: ExecTerminalOptions) {
  const channel = new FakeChannel();
  const term = new ExecTerminal(channel, options);
  const written: string[] = [];
  const closed: (number | void)[] = [];
  term.onDidWrite((s) => written.push(s));
  term.onDidClose((c) => closed.push(c));
  return { channel, term, written, closed };
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe('ExecTerminal', () => {
  it('writes a multi-byte character split across two output chunks whole', () => {
    const { term, written } = setup();
    term.open(undefined);
    term.attach('e1', size);
    const euro = bytes('price: 5€ ✓'); // € is 3 bytes, ✓ is 3 bytes
    const cut = euro.indexOf(0xe2) + 1; // inside the first 3-byte sequence
    term.output('e1', euro.slice(0, cut));
    term.output('e1', euro.slice(cut));
    assert.equal(written.join(''), 'price: 5€ ✓');
    assert.ok(!written.join('').includes('\ufffd'), 'no replacement character');
  });

  it('acknowledges every consumed output chunk with its byte count', () => {
    const { term, channel } = setup();
    term.open(undefined);
    term.attach('e1', size);
    term.output('e1', bytes('héllo'));
    term.output('e1', new Uint8Array([0xe2, 0x9c])); // half a character: consumed, nothing written yet
    term.output('e1', new Uint8Array([0x93]));
    assert.deepEqual(channel.of('ack'), [
      { m: 'ack', exec: 'e1', bytes: 6 },
      { m: 'ack', exec: 'e1', bytes: 2 },
      { m: 'ack', exec: 'e1', bytes: 1 },
    ]);
  });

  it('holds output that arrives before open, unacknowledged, and writes it on open', () => {
    const { term, channel, written } = setup();
    term.attach('e1', size);
    term.output('e1', bytes('early '));
    term.output('e1', bytes('bird'));
    assert.deepEqual(written, [], 'nothing written before open');
    assert.deepEqual(channel.of('ack'), [], 'nothing acked before open');
    term.open({ columns: 80, rows: 24 });
    assert.equal(written.join(''), 'early bird');
    assert.deepEqual(
      channel.of('ack').map((a) => a.bytes),
      [6, 4],
    );
  });

  it('settles opened with the size the editor opens it at', async () => {
    const { term } = setup();
    term.open({ columns: 132, rows: 43 });
    assert.deepEqual(await term.opened, { columns: 132, rows: 43 });
  });

  it('takes the exec id from output that arrives before attach', () => {
    const { term, channel, written } = setup();
    term.open(undefined);
    term.output('e7', bytes('x'));
    term.attach('e7', size);
    assert.equal(written.join(''), 'x');
    assert.deepEqual(channel.of('ack'), [{ m: 'ack', exec: 'e7', bytes: 1 }]);
  });

  it('sends input typed before attach once the exec id is known, as UTF-8', () => {
    const { term, channel } = setup();
    term.open(undefined);
    term.handleInput('ls ');
    term.handleInput('ä\r');
    assert.deepEqual(channel.of('input'), []);
    term.attach('e1', size);
    term.handleInput('\x03');
    assert.deepEqual(
      channel.of('input').map((c) => c.text),
      ['ls ', 'ä\r', '\x03'],
    );
  });

  it('sends a resize only when the editor size differs from the exec size', () => {
    const { term, channel } = setup();
    term.setDimensions({ columns: 120, rows: 40 }); // before attach: remembered
    term.attach('e1', size);
    term.open({ columns: 120, rows: 40 });
    term.setDimensions({ columns: 120, rows: 40 });
    term.setDimensions({ columns: 100, rows: 30 });
    assert.deepEqual(channel.of('resize'), [
      { m: 'resize', exec: 'e1', cols: 120, rows: 40 },
      { m: 'resize', exec: 'e1', cols: 100, rows: 30 },
    ]);
  });

  it('shows the exit code when the exec ends and closes on the next key without a code, so that the editor does not report it again', () => {
    const { term, channel, written, closed } = setup();
    term.open(undefined);
    term.attach('e1', size);
    term.output('e1', bytes('bye'));
    term.exit({ exec: 'e1', code: 3 });
    assert.match(written.join(''), /bye\x1b.*\r\n.*exited with code 3/);
    assert.deepEqual(closed, []);
    term.handleInput('q');
    assert.deepEqual(closed, [undefined]);
    assert.deepEqual(channel.of('input'), [], 'the key is not sent to the ended exec');
  });

  it('tells the editor its new name', () => {
    const { term } = setup();
    const names: string[] = [];
    term.onDidChangeName((n) => names.push(n));
    term.rename('claude · p #1a2b');
    assert.deepEqual(names, ['claude · p #1a2b']);
  });

  it('says after the exit what the caller asks it to (how to run the agent again)', () => {
    const { term, written } = setup({ afterExit: 'Bottle: Run Agent Again starts it anew' });
    term.open(undefined);
    term.attach('e1', size);
    term.exit({ exec: 'e1', code: 56 });
    assert.match(written.join(''), /\[process exited with code 56; press any key to close; Bottle: Run Agent Again starts it anew\]/);
  });

  it('stays open after the exit on reports the emulator sends by itself, and turns them off', () => {
    const { term, written, closed } = setup();
    term.open(undefined);
    term.attach('e1', size);
    term.output('e1', bytes('\x1b[?1004h\x1b[?1000h')); // focus and mouse reports on
    term.exit({ exec: 'e1', code: 1 });
    assert.match(written.join(''), /\x1b\[\?1004l/, 'focus reports turned off');
    const reports = [
      ...['\x1b[O', '\x1b[I', '\x1b[<0;12;5M', '\x1b[M !!', '\x1b[12;40R', '\x1b[?1;2c'],
      // late replies to queries the agent wrote before its exit: mode
      // (synchronized output), keyboard flags, status, window size, colour
      // (OSC, ended by BEL or ST), version (DCS), and two in one piece
      ...['\x1b[?2026;2$y', '\x1b[?0u', '\x1b[0n', '\x1b[8;24;80t', '\x1b]11;rgb:ffff/ffff/ffff\x07', '\x1b]10;rgb:0000/0000/0000\x1b\\'],
      ...['\x1bP>|xterm.js(5.5.0)\x1b\\', '\x1b[?2026;2$y\x1b[?0u'],
    ];
    for (const report of reports) {
      term.handleInput(report);
    }
    assert.deepEqual(closed, []);
    term.handleInput('\r');
    assert.deepEqual(closed, [undefined]);
  });

  it('closes after the exit on any key, escape sequences of keys too', () => {
    for (const key of ['q', '\r', '\x1b', '\x1b[A', '\x1b[1;5C', '\x1b[15~', '\x1bOP', '\x1bP', '\x1b[?2026;2$yq']) {
      const { term, closed } = setup();
      term.open(undefined);
      term.attach('e1', size);
      term.exit({ exec: 'e1', code: 0 });
      term.handleInput(key);
      assert.deepEqual(closed, [undefined], `key ${JSON.stringify(key)}`);
    }
  });

  it('delivers an exit that arrives before open after the held output', () => {
    const { term, written, closed } = setup();
    term.attach('e1', size);
    term.output('e1', bytes('done'));
    term.exit({ exec: 'e1', code: 0 });
    term.open(undefined);
    assert.match(written.join(''), /^done\x1b.*\r\n.*exited with code 0/);
    term.handleInput('\r');
    assert.deepEqual(closed, [undefined]);
  });

  it('flushes an incomplete character at exit as a replacement character', () => {
    const { term, written } = setup();
    term.open(undefined);
    term.attach('e1', size);
    term.output('e1', new Uint8Array([0x61, 0xe2, 0x82]));
    term.exit({ exec: 'e1', code: -1, error: 'session closed' });
    assert.match(written.join(''), /^a\ufffd\x1b.*\r\n.*process ended: session closed/);
  });

  it('kills the exec when the user closes the terminal, not after it ended', () => {
    const running = setup();
    running.term.open(undefined);
    running.term.attach('e1', size);
    running.term.close();
    running.term.close();
    assert.deepEqual(running.channel.of('kill'), [{ m: 'kill', exec: 'e1' }]);

    const ended = setup();
    ended.term.open(undefined);
    ended.term.attach('e2', size);
    ended.term.exit({ exec: 'e2', code: 0 });
    ended.term.close();
    assert.deepEqual(ended.channel.of('kill'), []);
  });

  it('kills an exec whose terminal was closed while it was starting', () => {
    const { term, channel } = setup();
    term.open(undefined);
    term.close();
    term.attach('e1', size);
    assert.deepEqual(channel.of('kill'), [{ m: 'kill', exec: 'e1' }]);
  });

  it('shows why an exec could not start and closes with 1 on the next key', () => {
    const { term, written, closed } = setup();
    term.open(undefined);
    term.fail('Run bash failed: session not ready');
    assert.match(written.join(''), /Run bash failed: session not ready/);
    term.handleInput('x');
    assert.deepEqual(closed, [undefined]);
  });

  it('on a resync, resets the screen and starts decoding afresh', async () => {
    const channel = new FakeChannel();
    const term = new ExecTerminal(channel);
    const screen = new Screen(40, 5);
    term.attach('e1');
    screen.show(term);
    term.output('e1', bytes('stale line\r\nhalf '));
    term.output('e1', new Uint8Array([0xe2, 0x82])); // a character cut off by the resync
    term.output('e1', bytes('kept line\r\n$ '), true);
    const text = await screen.waitFor(/kept line/);
    assert.doesNotMatch(text, /stale|half/, 'what the screen showed before is gone');
    assert.doesNotMatch(text, /\ufffd/, 'the cut character is dropped, not shown broken');
    assert.deepEqual(
      channel.of('ack').map((a) => a.bytes),
      [17, 2, 13],
      'every byte is acknowledged, before and after the resync',
    );
  });

  it('holds a replay until the reopened terminal opens, then sends the size it opened at', () => {
    const { term, channel, written } = setup();
    term.attach('e1'); // reattached: the exec's size is not known
    term.output('e1', bytes('$ echo marker-1\r\nmarker-1\r\n'));
    assert.deepEqual(written, []);
    assert.deepEqual(channel.of('resize'), [], 'no size before the editor gives one');
    term.open({ columns: 100, rows: 30 });
    assert.match(written.join(''), /marker-1/);
    assert.deepEqual(channel.of('resize'), [{ m: 'resize', exec: 'e1', cols: 100, rows: 30 }]);
  });

  it('keeps its process when closed with keepOnClose, and ends it on kill()', () => {
    const { term, channel } = setup({ keepOnClose: true });
    term.open(undefined);
    term.attach('e1', size);
    term.close();
    assert.deepEqual(channel.of('kill'), [], 'a reload closes terminals: the process stays');
    term.kill();
    assert.deepEqual(channel.of('kill'), [{ m: 'kill', exec: 'e1' }]);
  });

  it('with keepOnClose, kills an exec closed while starting only when kill() was asked', () => {
    const kept = setup({ keepOnClose: true });
    kept.term.close();
    kept.term.attach('e1', size);
    assert.deepEqual(kept.channel.of('kill'), []);

    const killed = setup({ keepOnClose: true });
    killed.term.close();
    killed.term.kill();
    killed.term.attach('e2', size);
    assert.deepEqual(killed.channel.of('kill'), [{ m: 'kill', exec: 'e2' }]);
  });

  it('counts as ended once its exec ended or its connection went, so a reattach opens a new one', () => {
    const { term } = setup({ keepOnClose: true });
    term.attach('e1');
    assert.equal(term.ended, false);
    term.exit({ exec: 'e1', code: -1, error: 'the connection to the bottle daemon ended; the bottle may still run' });
    assert.equal(term.ended, true);
  });
});
