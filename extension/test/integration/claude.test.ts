// The real Claude Code, in the default agent's image (under gVisor when
// the engine has it) with an allowlist of no real host, drawn through the
// extension's terminal into xterm.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ExecTerminal } from '../../src/terminal';
import { claudeManifest, leftovers, realClient } from '../helpers/engine';
import { Screen } from '../helpers/screen';

describe('Claude Code in a bottle', () => {
  const { client, pids } = realClient();
  const sessions = new Set<string>();

  after(async () => {
    for (const s of sessions) {
      await client.close(s).catch(() => undefined);
    }
    await client.dispose();
    assert.deepEqual(leftovers(sessions, pids), [], 'nothing left on the engine');
  });

  it('shows the Claude Code welcome screen in the agent’s terminal', { timeout: 300_000 }, async () => {
    const manifest = claudeManifest();
    const plan = await client.plan({ agent: 'claude', manifest });
    assert.equal(plan.command[0], 'claude');
    const started = await client.start({ agent: 'claude', manifest });
    sessions.add(started.session);
    assert.equal(started.runtime, plan.runtime);

    const pty = new ExecTerminal(client);
    const screen = new Screen(100, 30);
    screen.show(pty);
    pty.attach(await client.exec({ session: started.session, cols: 100, rows: 30 }, pty), { columns: 100, rows: 30 });
    // Offline, Claude Code greets and then says it cannot reach its service.
    const text = await screen.waitFor(/Unable to connect to Anthropic services/, 120_000);
    assert.match(text, /Welcome to Claude Code v\d+\.\d+/);

    pty.close();
    await client.close(started.session);
    assert.deepEqual(leftovers([started.session]), []);
  });
});
