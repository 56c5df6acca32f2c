import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import {
  BottleClient,
  ServerStartError,
  ServerStoppedError,
  type Backoff,
  type ClientHost,
  type CrashInfo,
  type ServerSpec,
} from '../../src/client';
import type { EgressApprovalParams, ExitParams, WorkDoneProgress } from '../../src/protocol';
import type { ExecSink } from '../../src/terminal';

const fakeServer = join(__dirname, '..', 'fixtures', 'fake-server.js');
const dir = mkdtempSync(join(tmpdir(), 'bottle-client-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Logged {
  pid: number;
  kind: 'request' | 'notification' | 'answer';
  method: string;
  params: unknown;
}

let n = 0;
const clients: BottleClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

function makeClient(
  opts: { backoff?: Backoff; env?: Record<string, string>; command?: string; approveEgress?: ClientHost['approveEgress'] } = {},
) {
  const log = join(dir, `log-${++n}.jsonl`);
  const crashes: CrashInfo[] = [];
  const lines: string[] = [];
  const server = (): ServerSpec => ({
    command: opts.command ?? process.execPath,
    args: opts.command ? [] : [fakeServer],
    env: { ...process.env, FAKE_LOG: log, ...opts.env },
  });
  const client = new BottleClient({
    server,
    clientInfo: { name: 'test', version: '1' },
    host: { log: (l) => lines.push(l), serverCrashed: (c) => crashes.push(c), approveEgress: opts.approveEgress },
    backoff: opts.backoff,
  });
  clients.push(client);
  const received = (): Logged[] =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Logged);
  return { client, crashes, lines, received };
}

function collectingSink() {
  const chunks: string[] = [];
  let resolveExit: (p: ExitParams) => void = () => undefined;
  const exited = new Promise<ExitParams>((r) => {
    resolveExit = r;
  });
  const sink: ExecSink = {
    output: (_exec, data) => chunks.push(Buffer.from(data).toString('utf8')),
    exit: (p) => resolveExit(p),
  };
  return { sink, chunks, exited };
}

function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) {
        resolve();
      } else if (Date.now() > deadline) {
        reject(new Error('condition not met in time'));
      } else {
        setTimeout(tick, 10);
      }
    };
    tick();
  });
}

describe('BottleClient', () => {
  it('starts the server on first use with initialize, then initialized, before any request', async () => {
    const { client, received } = makeClient();
    assert.equal(client.state, 'stopped');
    await client.plan({ agent: 'x' }).catch(() => undefined);
    const methods = received().map((m) => m.method);
    assert.deepEqual(methods.slice(0, 3), ['initialize', 'initialized', 'bottle/plan']);
    assert.deepEqual((received()[0]!.params as { clientInfo: unknown }).clientInfo, { name: 'test', version: '1' });
    assert.equal(client.state, 'running');
    assert.equal(client.capabilities?.flowControl.window, 1024);
  });

  it('declares capabilities.egressApproval only with an approver, and answers the server’s question with it', async () => {
    const ask: EgressApprovalParams = { session: 'cafe0001', method: 'CONNECT', host: 'github.com', port: 443 };
    const asked: EgressApprovalParams[] = [];
    const { client, received } = makeClient({
      env: { FAKE_ASK: JSON.stringify(ask) },
      approveEgress: (p) => {
        asked.push(p);
        return Promise.resolve({ decision: 'allowSession' });
      },
    });
    await client.ready();
    assert.deepEqual((received()[0]!.params as { capabilities?: unknown }).capabilities, { egressApproval: true });
    await until(() => received().some((m) => m.kind === 'answer'));
    assert.deepEqual(asked, [ask]);
    assert.deepEqual(received().find((m) => m.kind === 'answer')?.params, { decision: 'allowSession' });

    const plain = makeClient();
    await plain.client.ready();
    assert.equal((plain.received()[0]!.params as { capabilities?: unknown }).capabilities, undefined);
  });

  it('sends bottle/allow and bottle/disallow with the session and entries', async () => {
    const { client, received } = makeClient();
    await client.allow('cafe0001', ['github.com:443']).catch(() => undefined);
    await client.disallow('cafe0001', ['x.test']).catch(() => undefined);
    assert.deepEqual(
      received()
        .filter((m) => m.method === 'bottle/allow' || m.method === 'bottle/disallow')
        .map((m) => [m.method, m.params]),
      [
        ['bottle/allow', { session: 'cafe0001', entries: ['github.com:443'] }],
        ['bottle/disallow', { session: 'cafe0001', entries: ['x.test'] }],
      ],
    );
  });

  it('sends bottle/cpOut, bottle/changes and bottle/fetch, and returns close’s unfetched work', async () => {
    const { client, received } = makeClient();
    assert.deepEqual(await client.cpOut({ session: 'cafe0001', containerPath: '/w/a', hostPath: '/tmp/a', overwrite: true }), { bytes: 3 });
    const changes = await client.changes({ session: 'cafe0001', diff: true });
    assert.deepEqual(
      changes.files.map((f) => f.path),
      ['a.txt', 'b.txt'],
    );
    assert.equal((await client.fetch({ session: 'cafe0001' })).branch, 'bottle/sh/cafe0001');
    assert.deepEqual(await client.close('cafe0001'), { unfetched: { commits: 1, files: 2 } });
    assert.deepEqual(
      received()
        .filter((m) => ['bottle/cpOut', 'bottle/changes', 'bottle/fetch', 'bottle/close'].includes(m.method))
        .map((m) => [m.method, m.params]),
      [
        ['bottle/cpOut', { session: 'cafe0001', containerPath: '/w/a', hostPath: '/tmp/a', overwrite: true }],
        ['bottle/changes', { session: 'cafe0001', diff: true }],
        ['bottle/fetch', { session: 'cafe0001' }],
        ['bottle/close', { session: 'cafe0001' }],
      ],
    );
  });

  it('holds an attached exec’s replay until a terminal claims it, acknowledges what nobody shows, and hears bottle/sessionState', async () => {
    const { client, received } = makeClient();
    const states: string[] = [];
    client.onDidChangeSessionState((p) => states.push(`${p.session} ${p.state}`));
    const exits: ExitParams[] = [];
    client.onDidExitExec((p) => exits.push(p));
    const res = await client.attach('beef0002');
    assert.deepEqual(
      res.session.execs.map((e) => e.exec),
      ['beef0002-1', 'beef0002-2'],
    );
    assert.equal(client.isAttached('beef0002'), true);
    // The stranger's bytes are acknowledged once the notifications behind
    // the answer were read: the replay arrived before any terminal existed.
    await until(() => received().some((m) => m.method === 'bottle/ack' && (m.params as { exec: string }).exec === 'stranger-1'));
    const resyncs: boolean[] = [];
    const { sink, chunks } = collectingSink();
    client.claim('beef0002-1', {
      output: (e, data, resync) => {
        resyncs.push(resync === true);
        sink.output(e, data);
      },
      exit: (p) => sink.exit(p),
    });
    assert.deepEqual(chunks, ['marker-1\r\n', '$ ']);
    assert.deepEqual(resyncs, [false, true]);
    client.release('beef0002-2');
    assert.deepEqual(exits, [{ exec: 'beef0002-2', code: 0 }], 'a released exec’s exit is still heard');
    await until(() => received().filter((m) => m.method === 'bottle/ack').length === 2);
    assert.deepEqual(
      received()
        .filter((m) => m.method === 'bottle/ack')
        .map((m) => m.params),
      [
        { exec: 'stranger-1', bytes: 3 },
        { exec: 'beef0002-2', bytes: 6 },
      ],
      'output nobody shows never holds its process back',
    );
    assert.deepEqual(states, ['beef0002 closed']);
    assert.equal(client.isAttached('beef0002'), false, 'a closed session is attached to nobody');
  });

  it('routes an exec’s base64 output to its sink and ends it with bottle/exit', async () => {
    const { client } = makeClient();
    const { sink, chunks, exited } = collectingSink();
    const exec = await client.exec({ session: 'cafe0001', argv: ['true'] }, sink);
    assert.equal(exec, 'cafe0001-1');
    assert.deepEqual(await exited, { exec, code: 7 });
    assert.equal(chunks.join(''), 'héllo');
  });

  it('feeds the start’s $/progress to its listener before the result', async () => {
    const { client } = makeClient();
    const seen: WorkDoneProgress[] = [];
    const res = await client.start({ agent: 'sh' }, (p) => seen.push(p));
    assert.equal(res.session, 'cafe0001');
    assert.deepEqual(
      seen.map((p) => p.kind),
      ['begin', 'report', 'end'],
    );
    assert.equal(seen[1]?.message, 'networks ready');
  });

  it('sends input as base64, and resize, ack and kill as notifications', async () => {
    const { client, received } = makeClient();
    await client.ready();
    client.input('e1', new TextEncoder().encode('ä\r'));
    client.resize('e1', 100, 30);
    client.ack('e1', 42);
    client.kill('e1');
    await client.list(); // answered after the notifications before it were read
    const notes = received().filter((m) => m.kind === 'notification' && m.method.startsWith('bottle/'));
    assert.deepEqual(
      notes.map((m) => [m.method, m.params]),
      [
        ['bottle/input', { exec: 'e1', data: Buffer.from('ä\r').toString('base64') }],
        ['bottle/resize', { exec: 'e1', cols: 100, rows: 30 }],
        ['bottle/ack', { exec: 'e1', bytes: 42 }],
        ['bottle/kill', { exec: 'e1' }],
      ],
    );
  });

  it('restarts a crashed server with backoff, tells the user, and fails what was in flight', async () => {
    const backoff = { initialMs: 50, maxMs: 1000, maxRestarts: 3, stableMs: 60_000 };
    const { client, crashes } = makeClient({ backoff });
    await client.ready();
    const firstPid = client.serverPid;
    // The fake answers a plan of agent "crash" by dying.
    await assert.rejects(client.plan({ agent: 'crash' }), ServerStoppedError);
    await until(() => crashes.length === 1);
    assert.equal(crashes[0]!.code, 3);
    assert.equal(crashes[0]!.restartInMs, 50);
    await until(() => client.state === 'running' && client.serverPid !== firstPid);

    // The second crash in a row waits twice as long.
    await assert.rejects(client.plan({ agent: 'crash' }), ServerStoppedError);
    await until(() => crashes.length === 2);
    assert.equal(crashes[1]!.restartInMs, 100);
    await until(() => client.state === 'running');
  });

  it('stops restarting after maxRestarts crashes in a row', async () => {
    const backoff = { initialMs: 10, maxMs: 1000, maxRestarts: 1, stableMs: 60_000 };
    const { client, crashes } = makeClient({ backoff });
    await client.ready();
    await client.plan({ agent: 'crash' }).catch(() => undefined);
    await until(() => client.state === 'running');
    await client.plan({ agent: 'crash' }).catch(() => undefined);
    await until(() => crashes.length === 2);
    assert.equal(crashes[1]!.restartInMs, undefined);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(client.state, 'stopped', 'no restart after giving up');
    // The user can still start it again.
    await client.ready();
    assert.equal(client.state, 'running');
  });

  it('ends the execs of a server that died with code -1', async () => {
    const { client } = makeClient({ backoff: { initialMs: 10_000, maxMs: 10_000, maxRestarts: 1, stableMs: 60_000 } });
    const { sink, exited } = collectingSink();
    const exec = await client.exec({ session: 'cafe0001', argv: ['sleep'] }, sink);
    process.kill(client.serverPid!, 'SIGKILL');
    const p = await exited;
    assert.equal(p.exec, exec);
    assert.equal(p.code, -1);
    assert.match(p.error ?? '', /bottle-rpc stopped/);
  });

  it('reports a server that cannot be run as a ServerStartError', async () => {
    const { client } = makeClient({ command: join(dir, 'no-such-bottle-rpc') });
    await assert.rejects(client.ready(), (err: unknown) => {
      assert.ok(err instanceof ServerStartError);
      assert.match(err.message, /ENOENT/);
      return true;
    });
    assert.equal(client.state, 'stopped');
  });

  it('reports a server that exits during start-up with its last stderr line', async () => {
    const { client, crashes } = makeClient({ env: { FAKE_EXIT_AT_START: '2' } });
    await assert.rejects(client.ready(), (err: unknown) => {
      assert.ok(err instanceof ServerStartError);
      assert.match(err.message, /exit code 2/);
      assert.deepEqual(err.stderrTail, ['fake: cannot reach the engine']);
      return true;
    });
    assert.deepEqual(crashes, [], 'a failed start is no crash: nothing is restarted');
  });

  it('stops with shutdown then exit, and the server exits 0', async () => {
    const { client, received } = makeClient();
    await client.ready();
    await client.stop();
    const methods = received().map((m) => m.method);
    assert.deepEqual(methods.slice(-2), ['shutdown', 'exit']);
    assert.equal(client.state, 'stopped');
  });
});
