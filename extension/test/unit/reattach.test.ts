import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttachResult, ExecInfo, ListResult, SessionInfo } from '../../src/protocol';
import { execTitle } from '../../src/names';
import { Reattacher, reopenable, type AttachSource, type TerminalOpener } from '../../src/reattach';
import type { ExecSink } from '../../src/terminal';

function exec(id: string, argv: string[], running = true, tty = true): ExecInfo {
  return { exec: id, argv, tty, running, sent: 0, acked: 0, output: 0 };
}

function session(id: string, state: SessionInfo['state'], execs: ExecInfo[] = []): SessionInfo {
  return { session: id, agent: 'claude', state, execs, persist: true, attached: 0 };
}

class FakeClient implements AttachSource {
  sessions: SessionInfo[] = [];
  attachedHere = new Set<string>();
  attached: string[] = [];
  claimed: string[] = [];
  released: string[] = [];
  refuse = new Set<string>();
  list(): Promise<ListResult> {
    return Promise.resolve({ sessions: this.sessions });
  }
  attach(id: string): Promise<AttachResult> {
    if (this.refuse.has(id)) {
      return Promise.reject(new Error('session is closing'));
    }
    this.attached.push(id);
    this.attachedHere.add(id);
    return Promise.resolve({ session: { ...this.sessions.find((s) => s.session === id)!, attached: 1 } });
  }
  claim(e: string): void {
    this.claimed.push(e);
  }
  release(e: string): void {
    this.released.push(e);
  }
  isAttached(id: string): boolean {
    return this.attachedHere.has(id);
  }
}

class FakeOpener implements TerminalOpener {
  opened: string[] = [];
  shown = new Set<string>();
  has(e: string): boolean {
    return this.shown.has(e);
  }
  reopen(s: SessionInfo, e: ExecInfo): ExecSink {
    this.opened.push(`${execTitle(s.agent, e)} (${e.exec})`);
    this.shown.add(e.exec);
    return { output: () => undefined, exit: () => undefined };
  }
}

describe('Reattacher', () => {
  it('attaches to every bottle that is not closing, reopens running terminals, and claims or releases every exec', async () => {
    const client = new FakeClient();
    client.sessions = [
      session('a', 'ready', [
        exec('a-1', ['claude', '--append-system-prompt', 'hi']),
        exec('a-2', ['bash', '-l']),
        exec('a-3', ['sh', '-c', 'make test'], false),
        exec('a-4', ['cat'], true, false),
      ]),
      session('b', 'closed', [exec('b-1', ['bash', '-l'])]),
      session('c', 'closing', [exec('c-1', ['bash', '-l'])]),
      session('d', 'failed'),
    ];
    const opener = new FakeOpener();
    const attached = await new Reattacher(client, opener, () => undefined).all();
    assert.deepEqual(attached, ['a', 'd']);
    assert.deepEqual(opener.opened, ['claude (a-1)', 'claude: shell (a-2)']);
    assert.deepEqual(client.claimed, ['a-1', 'a-2']);
    assert.deepEqual(client.released, ['a-3', 'a-4'], 'an ended exec and one without a pty get no terminal');
  });

  it('skips bottles this window is attached to, and execs it already shows', async () => {
    const client = new FakeClient();
    client.sessions = [session('a', 'ready', [exec('a-1', ['bash', '-l'])]), session('b', 'ready', [exec('b-1', ['bash', '-l']), exec('b-2', ['bash', '-l'])])];
    client.attachedHere.add('a');
    const opener = new FakeOpener();
    opener.shown.add('b-1');
    await new Reattacher(client, opener, () => undefined).all();
    assert.deepEqual(client.attached, ['b']);
    assert.deepEqual(client.claimed, ['b-2']);
    assert.deepEqual(client.released, ['b-1']);
  });

  it('logs a refused attach and goes on with the others', async () => {
    const client = new FakeClient();
    client.sessions = [session('a', 'ready'), session('b', 'ready', [exec('b-1', ['bash', '-l'])])];
    client.refuse.add('a');
    const lines: string[] = [];
    const attached = await new Reattacher(client, new FakeOpener(), (l) => lines.push(l)).all();
    assert.deepEqual(attached, ['b']);
    assert.match(lines.join('\n'), /bottle\/attach a: session is closing/);
  });
});

describe('reopenable', () => {
  it('reopens running execs with a pty only', () => {
    const s = session('a', 'ready', [exec('1', ['a']), exec('2', ['b'], false), exec('3', ['c'], true, false)]);
    assert.deepEqual(
      reopenable(s).map((e) => e.exec),
      ['1'],
    );
  });
});
