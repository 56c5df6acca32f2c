import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Emitter, ErrorCodes, ResponseError } from 'vscode-jsonrpc';
import type { ChangesParams, ChangesResult, ExitParams, SessionInfo, SessionStateParams } from '../../src/protocol';
import {
  checkoutable,
  countOf,
  describeCount,
  describeFetch,
  fingerprint,
  closeDetail,
  gitPlanLine,
  isNoGit,
  sessionOfExec,
  WorkCounts,
  type SessionList,
  type WorkSource,
} from '../../src/work';

function session(id: string, state: SessionInfo['state'] = 'ready', execs: string[] = []): SessionInfo {
  return {
    session: id,
    agent: 'sh',
    state,
    execs: execs.map((exec) => ({ exec, argv: [], tty: true, running: true, sent: 0, acked: 0, output: 0 })),
    persist: true,
    attached: 1,
  };
}

function changes(files: string[], commits = 0, diff = ''): ChangesResult {
  return {
    base: 'b'.repeat(40),
    head: 'h'.repeat(40),
    commits: Array.from({ length: commits }, (_, i) => ({ id: String(i).repeat(40), subject: `c${i}` })),
    files: files.map((path) => ({ path, status: 'modified' })),
    diff,
  };
}

const noGit = new ResponseError(ErrorCodes.InvalidParams, 'no git', { kind: 'noGit', hint: 'use bottle/cpOut' });

class FakeSource implements WorkSource {
  calls: ChangesParams[] = [];
  answer: (p: ChangesParams) => ChangesResult | Error = () => changes([]);
  readonly stateEmitter = new Emitter<SessionStateParams>();
  readonly exitEmitter = new Emitter<ExitParams>();
  readonly onDidChangeSessionState = this.stateEmitter.event;
  readonly onDidExitExec = this.exitEmitter.event;
  changes(p: ChangesParams): Promise<ChangesResult> {
    this.calls.push(p);
    const a = this.answer(p);
    return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
  }
}

class FakeList implements SessionList {
  live: SessionInfo[] = [];
  readonly emitter = new Emitter<void>();
  readonly onDidChange = this.emitter.event;
}

const settle = () => new Promise((r) => setImmediate(r));

describe('work', () => {
  it('counts and describes what a bottle changed', () => {
    assert.deepEqual(countOf(changes(['a', 'b'], 1)), { commits: 1, files: 2 });
    assert.deepEqual(countOf({ commits: 3, files: 0 }), { commits: 3, files: 0 });
    assert.equal(describeCount({ commits: 1, files: 2 }), '1 commit, 2 files');
    assert.equal(describeCount({ commits: 0, files: 1 }), '0 commits, 1 file');
  });

  it('tells noGit and a server without bottle/changes from other errors', () => {
    assert.ok(isNoGit(noGit));
    assert.ok(isNoGit(new ResponseError(ErrorCodes.MethodNotFound, 'method not found: bottle/changes')));
    assert.ok(!isNoGit(new ResponseError(ErrorCodes.InvalidParams, 'bad', { kind: 'invalidParams', hint: '' })));
    assert.ok(!isNoGit(new Error('noGit')));
  });

  it('describes a fetch, and passes to git checkout only what cannot be an option', () => {
    const r = { branch: 'bottle/sh/cafe0001', head: 'd'.repeat(40), base: 'b'.repeat(40), commits: 2, uncommitted: true };
    assert.equal(describeFetch(r), 'Branch bottle/sh/cafe0001 has 2 commits on top of bbbbbbbb (the last one holds the uncommitted work).');
    assert.match(describeFetch({ ...r, branch: '' }), /Nothing to fetch/);
    for (const [branch, ok] of [
      ['bottle/sh/cafe0001', true],
      ['-b', false],
      ['--orphan', false],
      ['a b', false],
      ['', false],
    ] as const) {
      assert.equal(checkoutable(branch), ok, branch);
    }
  });

  it('says in the preflight whether .git is copied in', () => {
    assert.match(gitPlanLine('/p/.git', '/home/node/workspace', true), /git: \/p\/\.git → \/home\/node\/workspace\/\.git/);
    assert.match(gitPlanLine('/p/.git', undefined, false), /bottle\.copyGit is off/);
  });

  it('says in the close question that the agent’s edits in the bottle go with it', () => {
    const text = closeDetail({ session: 'ab12cd34' });
    assert.match(text, /bottle ab12cd34/);
    assert.match(text, /the agent's edits in the bottle go with them/);
    assert.match(text, /Fetch Changes as Branch/);
  });

  it('finds the session of an exec in the list, else by its id', () => {
    const live = [session('aaaa0001', 'ready', ['x-1']), session('bbbb0002')];
    assert.equal(sessionOfExec('x-1', live), 'aaaa0001');
    assert.equal(sessionOfExec('bbbb0002-7', live), 'bbbb0002');
    assert.equal(sessionOfExec('cccc0003-1', live), undefined);
  });

  it('asks about new ready sessions, after an exit and a ready state, and forgets closed ones', async () => {
    const src = new FakeSource();
    const list = new FakeList();
    const work = new WorkCounts(src, list, () => undefined);
    let changed = 0;
    work.onDidChange(() => changed++);
    src.answer = () => changes(['a'], 2);
    list.live = [session('aaaa0001'), session('bbbb0002', 'starting')];
    list.emitter.fire();
    await settle();
    assert.deepEqual(src.calls, [{ session: 'aaaa0001' }], 'no diff asked, a starting session not asked');
    assert.deepEqual(work.get('aaaa0001'), { commits: 2, files: 1 });
    assert.equal(changed, 1);

    list.emitter.fire();
    await settle();
    assert.equal(src.calls.length, 1, 'a known session is not asked again for a list change');

    src.answer = () => changes(['a', 'b'], 2);
    src.exitEmitter.fire({ exec: 'aaaa0001-1', code: 0 });
    await settle();
    assert.deepEqual(work.get('aaaa0001'), { commits: 2, files: 2 });
    src.stateEmitter.fire({ session: 'bbbb0002', state: 'ready' });
    await settle();
    assert.equal(src.calls.at(-1)?.session, 'bbbb0002');

    list.live = [];
    list.emitter.fire();
    assert.equal(work.get('aaaa0001'), undefined);
    work.dispose();
  });

  it('remembers a session without git and asks it no more; other errors keep the counts and are logged', async () => {
    const src = new FakeSource();
    const list = new FakeList();
    const lines: string[] = [];
    const work = new WorkCounts(src, list, (l) => lines.push(l));
    src.answer = () => noGit;
    list.live = [session('aaaa0001')];
    list.emitter.fire();
    await settle();
    list.emitter.fire();
    await settle();
    assert.equal(src.calls.length, 1);
    assert.equal(work.get('aaaa0001'), undefined);
    assert.deepEqual(lines, [], 'noGit is quiet');

    src.answer = () => changes(['a']);
    await work.refresh('bbbb0002');
    src.answer = () => new Error('engine gone');
    await work.refresh('bbbb0002');
    assert.deepEqual(work.get('bbbb0002'), { commits: 0, files: 1 });
    assert.match(lines.join('\n'), /bottle\/changes of bbbb0002: engine gone/);
    work.dispose();
  });

  it('runs one more refresh for calls made while one runs', async () => {
    const src = new FakeSource();
    const work = new WorkCounts(src, new FakeList(), () => undefined);
    const a = work.refresh('s');
    const b = work.refresh('s');
    const c = work.refresh('s');
    await Promise.all([a, b, c]);
    await settle();
    assert.equal(src.calls.length, 2);
    work.dispose();
  });

  it('counts as unfetched what changed since the last fetch, and nothing when nothing changed or there is no git', async () => {
    const src = new FakeSource();
    const work = new WorkCounts(src, new FakeList(), () => undefined);
    src.answer = () => changes([]);
    assert.equal(await work.unfetched('s'), undefined, 'no changes');
    src.answer = (p) => changes(['a'], 1, p.diff ? 'diff 1' : undefined);
    assert.deepEqual(await work.unfetched('s'), { commits: 1, files: 1 }, 'never fetched');
    await work.fetched('s');
    assert.equal(await work.unfetched('s'), undefined, 'fetched as it is');
    assert.equal(src.calls.at(-1)?.diff, true, 'compared by its diff');
    src.answer = (p) => changes(['a'], 1, p.diff ? 'diff 2' : undefined);
    assert.deepEqual(await work.unfetched('s'), { commits: 1, files: 1 }, 'edited after the fetch');
    src.answer = () => noGit;
    assert.equal(await work.unfetched('s'), undefined);
    src.answer = () => new Error('boom');
    await assert.rejects(work.unfetched('s'), /boom/);
    work.dispose();
  });

  it('fingerprints the head, files and diff', () => {
    const a = changes(['a'], 1, 'x');
    assert.equal(fingerprint(a), fingerprint({ ...a }));
    assert.notEqual(fingerprint(a), fingerprint({ ...a, diff: 'y' }));
    assert.notEqual(fingerprint(a), fingerprint({ ...a, head: 'e'.repeat(40) }));
    assert.notEqual(fingerprint(a), fingerprint(changes(['a', 'b'], 1, 'x')));
  });
});
