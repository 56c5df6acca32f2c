import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { FileChange } from '../../src/protocol';
import { baseBlob, copyTarget, inBottle, isCommitId, reviewItems, safeRepoPath, shownText } from '../../src/review';

const dir = mkdtempSync(join(tmpdir(), 'bottle-review-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('review', () => {
  it('takes only paths git prints: relative, no . or .. segments', () => {
    for (const [p, ok] of [
      ['a.txt', true],
      ['src/a b.ts', true],
      ['..', false],
      ['a/../../etc/passwd', false],
      ['/etc/passwd', false],
      ['./a', false],
      ['a//b', false],
      ['a\\..\\b', false],
      ['a\0b', false],
      ['', false],
    ] as const) {
      assert.equal(safeRepoPath(p), ok, JSON.stringify(p));
    }
  });

  it('gives each status its sides, leaves unsafe paths out, and stops at the limit', () => {
    const files: FileChange[] = [
      { path: 'new.txt', status: 'added' },
      { path: 'mod.txt', status: 'modified' },
      { path: 'gone.txt', status: 'deleted' },
      { path: 'to.txt', status: 'renamed', oldPath: 'from.txt' },
      { path: 'loose.txt', status: 'untracked' },
      { path: '../escape', status: 'added' },
      { path: 'ok.txt', status: 'renamed', oldPath: '/etc/shadow' },
      { path: 'extra.txt', status: 'modified' },
    ];
    const { items, left, unsafe } = reviewItems(files, 5);
    assert.deepEqual(items, [
      { path: 'new.txt', status: 'added', basePath: undefined, bottlePath: 'new.txt' },
      { path: 'mod.txt', status: 'modified', basePath: 'mod.txt', bottlePath: 'mod.txt' },
      { path: 'gone.txt', status: 'deleted', basePath: 'gone.txt', bottlePath: undefined },
      { path: 'to.txt', status: 'renamed', basePath: 'from.txt', bottlePath: 'to.txt' },
      { path: 'loose.txt', status: 'untracked', basePath: undefined, bottlePath: 'loose.txt' },
    ]);
    assert.deepEqual(unsafe, ['../escape', 'ok.txt']);
    assert.equal(left, 1);
  });

  it('copies each file to a folder of its own, under its base name', () => {
    assert.deepEqual(copyTarget('/r', 3, 'a/b/c.txt'), { dir: '/r/3', file: '/r/3/c.txt' });
    assert.equal(inBottle('/home/node/workspace', 'a/b.txt'), '/home/node/workspace/a/b.txt');
  });

  it('shows text, names binary and large files', () => {
    assert.equal(shownText(Buffer.from('héllo\n')), 'héllo\n');
    assert.match(shownText(Buffer.from([1, 0, 2])), /binary file of 3 bytes/);
    assert.match(shownText(Buffer.alloc(11, 97), 10), /11 bytes: larger than the 10/);
  });

  it('reads the base version from the host repository with git, and refuses what is not a commit and path', async () => {
    const repo = join(dir, 'repo');
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { encoding: 'utf8' }).trim();
    execFileSync('git', ['init', '-q', repo]);
    writeFileSync(join(repo, 'a.txt'), 'base\n');
    git('add', 'a.txt');
    git('commit', '-q', '-m', 'base');
    const base = git('rev-parse', 'HEAD');
    writeFileSync(join(repo, 'a.txt'), 'worktree\n');
    assert.equal((await baseBlob(repo, base, 'a.txt')).toString(), 'base\n');
    await assert.rejects(baseBlob(repo, base, 'missing.txt'), /git cat-file/);
    await assert.rejects(baseBlob(repo, '--output=/tmp/x', 'a.txt'), /not a commit/);
    await assert.rejects(baseBlob(repo, base, '../a.txt'), /not a commit/);
    assert.ok(isCommitId(base));
    assert.ok(!isCommitId('HEAD'));
  });
});
