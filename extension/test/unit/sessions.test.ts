import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Emitter } from 'vscode-jsonrpc';
import type { ClientState } from '../../src/client';
import type { ExitParams, ListResult, SessionInfo, SessionStateParams } from '../../src/protocol';
import { describeSession, sessionContext, Sessions, type SessionSource } from '../../src/sessions';

function session(id: string, state: SessionInfo['state'] = 'ready', attached = 1): SessionInfo {
  return { session: id, agent: 'sh', state, execs: [], persist: true, attached };
}

class FakeSource implements SessionSource {
  state: ClientState = 'stopped';
  lists = 0;
  result: SessionInfo[] = [];
  gate: Promise<void> = Promise.resolve();
  readonly stateEmitter = new Emitter<ClientState>();
  readonly exitEmitter = new Emitter<ExitParams>();
  readonly onDidChangeState = this.stateEmitter.event;
  readonly onDidExitExec = this.exitEmitter.event;
  readonly sessionStateEmitter = new Emitter<SessionStateParams>();
  readonly onDidChangeSessionState = this.sessionStateEmitter.event;
  attachedHere = new Set<string>();
  isAttached(s: string): boolean {
    return this.attachedHere.has(s);
  }
  async list(): Promise<ListResult> {
    this.lists++;
    const snapshot = [...this.result];
    await this.gate;
    return { sessions: snapshot };
  }
}

describe('Sessions', () => {
  it('asks no server while none runs, and still refreshes once one does', async () => {
    const src = new FakeSource();
    const sessions = new Sessions(src, () => undefined);
    await sessions.refresh();
    assert.equal(src.lists, 0);
    src.state = 'running';
    src.result = [session('a')];
    await sessions.refresh();
    assert.deepEqual(
      sessions.live.map((s) => s.session),
      ['a'],
    );
  });

  it('makes a refresh asked during a reload see what changed before it was asked', async () => {
    const src = new FakeSource();
    src.state = 'running';
    let open: () => void = () => undefined;
    src.gate = new Promise((r) => (open = r));
    const sessions = new Sessions(src, () => undefined);
    const first = sessions.refresh();
    src.result = [session('a')]; // started after the first reload read the list
    const second = sessions.refresh();
    const third = sessions.refresh();
    open();
    await Promise.all([first, second, third]);
    assert.equal(src.lists, 2, 'the calls during the reload share one more reload');
    assert.deepEqual(
      sessions.live.map((s) => s.session),
      ['a'],
    );
  });

  it('leaves closed sessions out and shows a start while it runs', async () => {
    const src = new FakeSource();
    src.state = 'running';
    src.result = [session('a', 'closed'), session('b')];
    const sessions = new Sessions(src, () => undefined);
    let finish: (v: { session: string }) => void = () => undefined;
    const start = new Promise<{ session: string }>((r) => (finish = r));
    const tracked = sessions.track('sh', start);
    assert.deepEqual(sessions.starting, ['sh']);
    finish({ session: 'b' });
    await tracked;
    assert.deepEqual(sessions.starting, []);
    assert.deepEqual(
      sessions.live.map((s) => s.session),
      ['b'],
    );
  });

  it('keeps a session’s origin while it lives, through a failed list, and forgets it once closed', async () => {
    const src = new FakeSource();
    src.state = 'running';
    src.result = [session('a')];
    const sessions = new Sessions(src, () => undefined);
    await sessions.refresh();
    const origin = { manifest: '/w/bottle.yaml', inWorkspace: true, bottle: 'b', allow: ['x.test'] };
    sessions.remember('a', origin);
    await sessions.refresh();
    assert.deepEqual(sessions.origin('a'), origin);
    src.list = () => Promise.reject(new Error('busy'));
    await sessions.refresh();
    assert.deepEqual(sessions.origin('a'), origin, 'a failed list says nothing about which sessions ended');
    src.list = () => Promise.resolve({ sessions: [session('a', 'closed')] });
    await sessions.refresh();
    assert.equal(sessions.origin('a'), undefined);
  });

  it('shows a bottle/sessionState at once, then reloads the list', async () => {
    const src = new FakeSource();
    src.state = 'running';
    src.result = [session('a')];
    const sessions = new Sessions(src, () => undefined);
    await sessions.refresh();
    let open: () => void = () => undefined;
    src.gate = new Promise((r) => (open = r));
    src.result = [session('a', 'closed')];
    const states: string[] = [];
    sessions.onDidChange(() => states.push(sessions.find('a')?.state ?? 'none'));
    src.sessionStateEmitter.fire({ session: 'a', state: 'failed', error: 'container vanished' });
    assert.equal(sessions.find('a')?.state, 'failed', 'before any list answers');
    assert.equal(sessions.find('a')?.error, 'container vanished');
    open();
    await sessions.refresh();
    assert.deepEqual(sessions.live, []);
    assert.equal(states[0], 'failed');
  });

  it('tells this window’s bottles from detached ones and ones attached elsewhere', () => {
    const cases: { name: string; s: SessionInfo; here: boolean; description: string; context: string }[] = [
      { name: 'attached here', s: session('a'), here: true, description: 'a', context: 'bottle.session.ready' },
      { name: 'nobody attached', s: session('b', 'ready', 0), here: false, description: 'b · detached', context: 'bottle.session.ready.detached' },
      { name: 'another window', s: session('c', 'ready', 1), here: false, description: 'c · attached elsewhere', context: 'bottle.session.ready.detached' },
      { name: 'failed, detached', s: session('d', 'failed', 0), here: false, description: 'd · failed · detached', context: 'bottle.session.failed.detached' },
      { name: 'here and elsewhere', s: session('e', 'ready', 2), here: true, description: 'e', context: 'bottle.session.ready' },
    ];
    for (const c of cases) {
      assert.equal(describeSession(c.s, c.here), c.description, c.name);
      assert.equal(sessionContext(c.s, c.here), c.context, c.name);
    }
  });

  it('asks the client which bottles this window is attached to', () => {
    const src = new FakeSource();
    src.attachedHere.add('a');
    const sessions = new Sessions(src, () => undefined);
    assert.equal(sessions.attachedHere('a'), true);
    assert.equal(sessions.attachedHere('b'), false);
  });

  it('names bottles by agent and folder, keeps the folder across a reload, and forgets it once the bottle is gone', async () => {
    const src = new FakeSource();
    src.state = 'running';
    src.result = [session('aaaa0001'), session('bbbb0002')];
    const kept = new Map<string, unknown>();
    const store = {
      get: <T>(k: string) => kept.get(k) as T | undefined,
      update: (k: string, v: unknown) => {
        kept.set(k, JSON.parse(JSON.stringify(v)));
        return Promise.resolve();
      },
    };
    const sessions = new Sessions(src, () => undefined, store);
    await sessions.refresh();
    const origin = { inWorkspace: true, bottle: 'plain', allow: [] };
    sessions.remember('aaaa0001', { ...origin, cwd: '/src/proj' });
    sessions.remember('bbbb0002', { ...origin, cwd: '/other/proj' });
    assert.equal(sessions.name('aaaa0001'), 'sh · proj #aaaa');
    assert.equal(sessions.name('bbbb0002'), 'sh · proj #bbbb');

    // The window reloads: a new model over the same store, no server yet.
    const after = new Sessions(src, () => undefined, store);
    assert.equal(after.folder('aaaa0001'), '/src/proj');
    await after.refresh();
    assert.equal(after.name('aaaa0001'), 'sh · proj #aaaa');
    src.result = [session('aaaa0001')];
    await after.refresh();
    assert.equal(after.name('aaaa0001'), 'sh · proj', 'no collision left: no id');
    assert.equal(after.folder('bbbb0002'), undefined);
    assert.deepEqual(Object.keys(kept.get('bottle.origins') as object), ['aaaa0001']);
  });

  it('clears exited processes from the view, never running ones', async () => {
    const src = new FakeSource();
    src.state = 'running';
    const s = session('a');
    const e = (exec: string, running: boolean) => ({ exec, argv: ['bash'], tty: true, running, sent: 0, acked: 0, output: 0 });
    s.execs = [e('a-1', false), e('a-2', true), e('a-3', false)];
    src.result = [s];
    const sessions = new Sessions(src, () => undefined);
    await sessions.refresh();
    assert.equal(sessions.clearExited('a'), 2);
    assert.deepEqual(
      sessions.shownExecs(sessions.find('a')!).map((x) => x.exec),
      ['a-2'],
    );
    assert.equal(sessions.clearExited('a'), 0);
  });
});
