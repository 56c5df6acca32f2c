// The extension's client and terminal against the real bottle-rpc and a
// real bottle (bash in the base image, under runc), read through xterm.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EgressParams, ExitParams } from '../../src/protocol';
import { ExecTerminal } from '../../src/terminal';
import { leftovers, quickManifest, realClient } from '../helpers/engine';
import { Screen } from '../helpers/screen';

describe('a bottle through the extension’s client and terminal', () => {
  const { client, pids } = realClient();
  const manifest = quickManifest();
  const sessions = new Set<string>();
  const exits = new Map<string, ExitParams>();
  const egress: EgressParams[] = [];
  client.onDidExitExec((p) => exits.set(p.exec, p));
  client.onDidEgress((p) => egress.push(p));
  let session = '';

  before(async () => {
    const started = await client.start({ agent: 'sh', manifest });
    session = started.session;
    sessions.add(session);
    assert.equal(started.runtime, 'runc');
  });

  after(async () => {
    try {
      for (const s of sessions) {
        await client.close(s).catch(() => undefined);
      }
      await client.dispose();
    } finally {
      rmSync(dirname(manifest), { recursive: true, force: true });
    }
    assert.deepEqual(leftovers(sessions, pids), [], 'nothing left on the engine');
  });

  /**
   * Runs argv (the agent when undefined) in a terminal shown on a screen.
   * Short commands end with a sleep: bottle-rpc sizes a tty exec after
   * starting it, and fails the exec when the process ended before that.
   */
  async function open(argv?: string[], cols = 80, rows = 24, show = true) {
    const pty = new ExecTerminal(client);
    const screen = new Screen(cols, rows);
    if (show) {
      screen.show(pty);
    }
    const exec = await client.exec({ session, argv, cols, rows }, pty);
    pty.attach(exec, { columns: cols, rows });
    return { pty, screen, exec };
  }

  async function exitOf(exec: string, timeoutMs = 20_000): Promise<ExitParams> {
    const deadline = Date.now() + timeoutMs;
    while (!exits.has(exec)) {
      if (Date.now() > deadline) {
        throw new Error(`${exec} did not exit in ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return exits.get(exec)!;
  }

  it('shows what the agent’s shell prints, UTF-8 intact, on an xterm screen', async () => {
    const { pty, screen, exec } = await open();
    pty.handleInput(`printf '%s\\n' "grüße ✓ $((6*7))"\r`);
    await screen.waitFor(/^grüße ✓ 42$/m);
    pty.handleInput('exit 5\r');
    assert.equal((await exitOf(exec)).code, 5);
  });

  it('resizes the pty when the terminal is resized', async () => {
    const { pty, screen } = await open(['bash']);
    screen.resize(pty, 100, 30);
    // Input sent after a resize reaches the shell once the size is set.
    pty.handleInput('stty size\r');
    await screen.waitFor(/^30 100$/m);
    pty.close();
  });

  it('holds an exec at one window of output until its terminal opens, then delivers every byte', async () => {
    const total = 3_000_000;
    const { pty, exec } = await open(['sh', '-c', `head -c ${total} /dev/zero | tr '\\0' x; echo; echo END`], 80, 24, false);
    const window = client.capabilities!.flowControl.window;
    // Unopened, the terminal acks nothing: the server stops at the window,
    // and stays there.
    const snapshot = async () =>
      (await client.list()).sessions.find((s) => s.session === session)!.execs.find((e) => e.exec === exec)!;
    const deadline = Date.now() + 60_000;
    while ((await snapshot()).sent < window && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 1000));
    const held = await snapshot();
    assert.equal(held.running, true, 'the writer is blocked, not finished');
    assert.equal(held.sent, window);
    assert.equal(held.acked, 0);

    const writes: string[] = [];
    pty.onDidWrite((s) => writes.push(s));
    pty.open({ columns: 80, rows: 24 });
    assert.equal((await exitOf(exec, 60_000)).code, 0);
    const out = writes.join('');
    assert.match(out, /^x+\r\nEND\r\n/);
    assert.equal(out.indexOf('\r\n'), total, 'every byte, in order');
    const done = await snapshot();
    assert.equal(done.acked, done.sent, 'every byte acked');
  });

  it('ends the exec when its terminal is closed, and the bottle stays', async () => {
    const { pty, screen, exec } = await open(['bash']);
    pty.handleInput('echo ready\r');
    await screen.waitFor(/^ready$/m);
    pty.close();
    const exit = await exitOf(exec);
    assert.notEqual(exit.code, 0);
    const s = (await client.list()).sessions.find((x) => x.session === session)!;
    assert.equal(s.state, 'ready');
    const again = await open(['sh', '-c', 'echo still here; sleep 1']);
    await again.screen.waitFor(/^still here$/m);
  });

  it('copies a host file into the bottle', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bottle-ext-cp-'));
    try {
      const file = join(dir, 'notes.md');
      writeFileSync(file, 'copied ✓\n');
      const res = await client.cp({ session, hostPath: file, containerPath: '/home/node/workspace/notes.md' });
      assert.equal(res.bytes, Buffer.byteLength('copied ✓\n'));
      const { screen } = await open(['sh', '-c', 'cat ~/workspace/notes.md; ls -l ~/workspace/notes.md; sleep 1']);
      const text = await screen.waitFor(/^copied ✓$/m);
      assert.match(text, /node +node/, 'owned by the agent user');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a connection the egress proxy refused', async () => {
    const { exec } = await open(['sh', '-c', 'curl -sS -o /dev/null https://refused.test/; sleep 1']);
    await exitOf(exec);
    const deadline = Date.now() + 5000;
    // The decision, not the proxy's question that a client without the
    // approval capability never sees asked.
    const isRefusal = (e: EgressParams): boolean => e.record.host === 'refused.test' && e.record.event === 'decision';
    while (!egress.some(isRefusal) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const refused = egress.find(isRefusal);
    assert.ok(refused, 'a bottle/egress record for refused.test');
    assert.equal(refused.session, session);
    assert.equal(refused.record.decision, 'deny');
  });

  it('closes the bottle and removes everything it made', async () => {
    await client.close(session);
    assert.deepEqual(leftovers([session]), []);
  });
});
