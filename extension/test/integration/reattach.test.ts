// A bottle that outlives its window: one client starts it through the
// daemon (serve --remote=auto) and goes away; a second one attaches, as a
// reloaded window does, and gets the same screen and the same shell.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ExecInfo, SessionInfo } from '../../src/protocol';
import { Reattacher, type TerminalOpener } from '../../src/reattach';
import { ExecTerminal, type ExecSink } from '../../src/terminal';
import { leftovers, quickManifest, realClient } from '../helpers/engine';
import { Screen } from '../helpers/screen';

/** The daemons listening in runtimeDir: this test's own, found by their socket. */
function daemonsIn(runtimeDir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes('daemon') && argv.some((a) => a.includes(runtimeDir))) {
        found.push(Number(entry));
      }
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

function ownerPids(session: string): number[] {
  return execFileSync('docker', ['ps', '-a', '--filter', `label=dev.bottle.session=${session}`, '--format', '{{.Label "dev.bottle.owner.pid"}}'], {
    encoding: 'utf8',
  })
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

describe('a persistent bottle after its client went', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bottle-ext-daemon-'));
  const runtimeDir = join(dir, 'run');
  mkdirSync(runtimeDir, { mode: 0o700 });
  const env = { ...process.env, XDG_RUNTIME_DIR: runtimeDir, XDG_STATE_HOME: join(dir, 'state') };
  const manifest = quickManifest();
  const sessions = new Set<string>();
  const owners = new Set<number>();
  const a = realClient(undefined, { remote: true, env });
  const b = realClient(undefined, { remote: true, env });

  after(async () => {
    try {
      for (const s of sessions) {
        await b.client.close(s).catch(() => undefined);
      }
      await a.client.dispose();
      await b.client.dispose();
      const daemons = daemonsIn(runtimeDir);
      daemons.forEach((pid) => process.kill(pid, 'SIGTERM'));
      const deadline = Date.now() + 60_000;
      while (daemons.some((pid) => existsSync(`/proc/${pid}`))) {
        assert.ok(Date.now() < deadline, 'the daemon exits on SIGTERM');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(dirname(manifest), { recursive: true, force: true });
    }
    assert.deepEqual(leftovers(sessions, [...a.pids, ...b.pids, ...owners]), [], 'nothing left on the engine');
  });

  it('comes back in a new client’s terminal with its screen replayed and the same shell behind it', { timeout: 180_000 }, async () => {
    const { session } = await a.client.start({ agent: 'sh', manifest, persist: true });
    sessions.add(session);
    ownerPids(session).forEach((p) => owners.add(p));
    const first = new ExecTerminal(a.client);
    const screen = new Screen(80, 24);
    screen.show(first);
    const exec = await a.client.exec({ session, cols: 80, rows: 24 }, first);
    first.attach(exec, { columns: 80, rows: 24 });
    first.handleInput('echo marker-1; echo $$\r');
    const pid = /^marker-1\n(\d+)$/m.exec(await screen.waitFor(/^marker-1\n\d+$/m))![1]!;

    // The window goes: its client shuts down; the bottle is persistent.
    await a.client.dispose();
    await b.client.ready();
    assert.deepEqual(
      (await b.client.list()).sessions.map((s) => [s.session, s.state, s.attached]),
      [[session, 'ready', 0]],
      'the bottle runs on, detached',
    );

    // A reloaded window attaches and reopens the shell's terminal.
    const reopened: { info: ExecInfo; pty: ExecTerminal; screen: Screen }[] = [];
    const opener: TerminalOpener = {
      has: () => false,
      reopen: (_s: SessionInfo, info: ExecInfo): ExecSink => {
        const pty = new ExecTerminal(b.client);
        pty.attach(info.exec);
        reopened.push({ info, pty, screen: new Screen(100, 30) });
        return pty;
      },
    };
    assert.deepEqual(await new Reattacher(b.client, opener, () => undefined).all(), [session]);
    assert.deepEqual(
      reopened.map((r) => r.info.exec),
      [exec],
    );
    const again = reopened[0]!;
    // The editor opens the terminal a while after it was made: the replay waited.
    again.screen.show(again.pty);
    await again.screen.waitFor(/^marker-1\n\d+$/m);
    again.pty.handleInput('echo $$\r');
    await again.screen.waitFor(new RegExp(`^${pid}\\n[\\s\\S]*^${pid}$`, 'm'));
    again.pty.handleInput('stty size\r');
    await again.screen.waitFor(/^30 100$/m);
  });
});
