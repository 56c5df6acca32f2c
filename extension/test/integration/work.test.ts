// Bringing the agent's work home through the extension's client and work
// model, against the real bottle-rpc: a bottle of a git workspace, the
// agent's commit and edit, the counts, the base and bottle sides of a
// review, a fetch, and close's unfetched.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Emitter } from 'vscode-jsonrpc';
import type { ExitParams, SessionInfo } from '../../src/protocol';
import { baseBlob, inBottle } from '../../src/review';
import { isNoGit, WorkCounts } from '../../src/work';
import { leftovers, quickManifest, realClient } from '../helpers/engine';

describe('the agent’s work through the extension’s client', () => {
  const { client, pids } = realClient();
  const manifest = quickManifest();
  const dir = mkdtempSync(join(tmpdir(), 'bottle-ext-work-'));
  const repo = join(dir, 'project');
  const sessions = new Set<string>();
  const list = { live: [] as SessionInfo[], onDidChange: new Emitter<void>().event };
  const work = new WorkCounts(client, list, () => undefined);
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', repo, '-c', 'user.name=user', '-c', 'user.email=user@bottle.test', ...args], { encoding: 'utf8' }).trim();
  let session = '';
  let workspace = '';
  let base = '';

  /** Runs a shell line in the bottle without a terminal and waits for its exit code. */
  async function run(line: string): Promise<number> {
    const exited = new Promise<ExitParams>((resolve) => {
      void client.exec(
        { session, argv: ['sh', '-c', line], tty: false },
        { output: () => undefined, exit: (p) => resolve(p) },
      );
    });
    return (await exited).code;
  }

  before(async () => {
    execFileSync('git', ['init', '-q', '-b', 'main', repo]);
    writeFileSync(join(repo, 'a.txt'), 'base\n');
    git('add', 'a.txt');
    git('commit', '-q', '-m', 'base');
    base = git('rev-parse', 'HEAD');
    const started = await client.start({ agent: 'sh', manifest, cwd: repo, copyGit: true });
    session = started.session;
    workspace = started.workspace;
    sessions.add(session);
  });

  after(async () => {
    try {
      for (const s of sessions) {
        await client.close(s).catch(() => undefined);
      }
      work.dispose();
      await client.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(dirname(manifest), { recursive: true, force: true });
    }
    assert.deepEqual(leftovers(sessions, pids), [], 'nothing left on the engine');
  });

  it('counts the agent’s commit and edit, shows both sides of a file, fetches them, and close counts an edit made after the fetch', async () => {
    assert.equal(await work.unfetched(session), undefined, 'nothing yet');
    const code = await run(
      "echo agent > b.txt && git add b.txt && git -c user.name=a -c user.email=a@b commit -qm 'agent b' && echo edited > a.txt",
    );
    assert.equal(code, 0);
    assert.deepEqual(await work.unfetched(session), { commits: 1, files: 2 });
    assert.deepEqual(work.get(session), { commits: 1, files: 2 });

    // The two sides of a review of a.txt.
    assert.equal((await baseBlob(repo, base, 'a.txt')).toString(), 'base\n');
    const copy = join(dir, 'a-from-bottle.txt');
    await client.cpOut({ session, containerPath: inBottle(workspace, 'a.txt'), hostPath: copy });
    assert.equal(readFileSync(copy, 'utf8'), 'edited\n');

    const fetched = await client.fetch({ session });
    assert.equal(fetched.branch, `bottle/sh/${session}`);
    assert.equal(fetched.commits, 2, 'the agent’s commit and one for the uncommitted edit');
    assert.ok(fetched.uncommitted);
    await work.fetched(session);
    assert.equal(await work.unfetched(session), undefined, 'all of it was fetched');
    assert.equal(git('show', `${fetched.branch}:a.txt`), 'edited');

    assert.equal(await run('echo later >> a.txt'), 0);
    assert.deepEqual(await work.unfetched(session), { commits: 1, files: 2 }, 'an edit after the fetch is unfetched');
    const closed = await client.close(session);
    assert.ok(closed.unfetched && closed.unfetched.files > 0, `close says what was lost: ${JSON.stringify(closed)}`);
  });

  it('gets noGit for a bottle started without .git', async () => {
    const plain = await client.start({ agent: 'sh', manifest, cwd: repo });
    sessions.add(plain.session);
    await assert.rejects(client.changes({ session: plain.session }), (err) => isNoGit(err));
    assert.equal(await work.unfetched(plain.session), undefined);
    assert.deepEqual(await client.close(plain.session), {});
  });
});
