// A bottle-rpc that dies is restarted, and the new one reaps the bottles
// the dead one left on the engine.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, describe, it } from 'node:test';
import { leftovers, quickManifest, realClient } from '../helpers/engine';

describe('a crashed bottle-rpc', () => {
  const { client, crashes, pids } = realClient({ initialMs: 100, maxMs: 1000, maxRestarts: 3, stableMs: 60_000 });
  const manifest = quickManifest();
  const sessions = new Set<string>();

  after(async () => {
    await client.dispose();
    rmSync(dirname(manifest), { recursive: true, force: true });
    assert.deepEqual(leftovers(sessions, pids), [], 'nothing left on the engine');
  });

  it('is restarted with backoff, and the new server removes the orphaned bottle', { timeout: 120_000 }, async () => {
    const { session } = await client.start({ agent: 'sh', manifest });
    sessions.add(session);
    const deadPid = client.serverPid!;
    assert.notDeepEqual(leftovers([session]), [], 'the bottle exists');

    process.kill(deadPid, 'SIGKILL'); // no teardown: the bottle is orphaned
    const deadline = Date.now() + 60_000;
    while (!(client.state === 'running' && client.serverPid !== deadPid)) {
      assert.ok(Date.now() < deadline, 'restarted within a minute');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(crashes.length, 1);
    assert.equal(crashes[0]!.signal, 'SIGKILL');
    assert.equal(crashes[0]!.restartInMs, 100);
    // The new server reaps orphans before it answers initialize.
    assert.deepEqual(leftovers([session]), []);
    assert.deepEqual((await client.list()).sessions, []);
  });
});
