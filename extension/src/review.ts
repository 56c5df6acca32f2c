// What Review Changes shows for each file the agent changed: the base
// version read from the user's own repository, the bottle's version copied
// out of the bottle. The paths come from the bottle and are not trusted: a
// file is copied to a folder of its own, under its base name. No vscode
// import.

import { execFile } from 'node:child_process';
import * as path from 'node:path';
import type { FileChange } from './protocol';

/** How many files one review copies out; the rest are in the unified diff. */
export const reviewLimit = 200;

/** The largest file a review shows; bigger ones are named, not shown. */
export const reviewMaxBytes = 1 << 20;

export interface ReviewItem {
  /** the path in the repository, as the bottle names it */
  path: string;
  status: FileChange['status'];
  /** the path in the base commit; undefined: the file is new */
  basePath?: string;
  /** the path in the bottle's workspace; undefined: the file was deleted */
  bottlePath?: string;
}

/**
 * A repository path as git prints it: relative, no `..`, no empty or `.`
 * segment, no NUL. Anything else is left out of the review.
 */
export function safeRepoPath(p: string): boolean {
  if (!p || p.includes('\0') || p.startsWith('/') || p.includes('\\')) {
    return false;
  }
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** The files to show, at most limit of them, and how many were left out. */
export function reviewItems(files: FileChange[], limit = reviewLimit): { items: ReviewItem[]; left: number; unsafe: string[] } {
  const items: ReviewItem[] = [];
  const unsafe: string[] = [];
  for (const f of files) {
    const oldPath = f.status === 'renamed' ? f.oldPath : undefined;
    if (!safeRepoPath(f.path) || (oldPath !== undefined && !safeRepoPath(oldPath))) {
      unsafe.push(f.path);
      continue;
    }
    if (items.length === limit) {
      continue;
    }
    const isNew = f.status === 'added' || f.status === 'untracked';
    items.push({
      path: f.path,
      status: f.status,
      basePath: isNew ? undefined : (oldPath ?? f.path),
      bottlePath: f.status === 'deleted' ? undefined : f.path,
    });
  }
  return { items, left: files.length - unsafe.length - items.length, unsafe };
}

/** The absolute path of a repository path in the bottle's workspace. */
export function inBottle(workspace: string, repoPath: string): string {
  return path.posix.join(workspace, repoPath);
}

/**
 * Where the i-th file of a review is copied to on the host: a folder of
 * its own under root, so that no file the bottle names (a symlink among
 * them) can lead another one's copy elsewhere.
 */
export function copyTarget(root: string, i: number, repoPath: string): { dir: string; file: string } {
  const dir = path.join(root, String(i));
  return { dir, file: path.join(dir, path.posix.basename(repoPath)) };
}

/** A commit id as git prints it: what is passed to git on the host. */
export function isCommitId(s: string): boolean {
  return /^[0-9a-f]{7,64}$/.test(s);
}

/**
 * The base version of a file: the blob in the user's repository at cwd,
 * read with git cat-file (no filters, no textconv, no hooks of anyone's).
 */
export function baseBlob(cwd: string, base: string, repoPath: string, maxBytes = reviewMaxBytes): Promise<Buffer> {
  if (!isCommitId(base) || !safeRepoPath(repoPath)) {
    return Promise.reject(new Error(`not a commit and path git is asked about: ${base}:${repoPath}`));
  }
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-C', cwd, 'cat-file', 'blob', `${base}:${repoPath}`],
      { encoding: 'buffer', maxBuffer: maxBytes, env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } },
      (err, stdout, stderr) => {
        if (err) {
          const why = stderr.toString().trim() || err.message;
          reject(new Error(`git cat-file ${base.slice(0, 8)}:${repoPath}: ${why}`));
          return;
        }
        resolve(stdout);
      },
    );
  });
}

/** What the diff editor shows of a file's bytes: its text, or a line saying why not. */
export function shownText(bytes: Buffer, maxBytes = reviewMaxBytes): string {
  if (bytes.length > maxBytes) {
    return `(${bytes.length} bytes: larger than the ${maxBytes} a review shows)\n`;
  }
  if (bytes.subarray(0, 8000).includes(0)) {
    return `(a binary file of ${bytes.length} bytes)\n`;
  }
  return bytes.toString('utf8');
}

/** The title of the changes editor. */
export function reviewTitle(agent: string, session: string, commits: number, files: number): string {
  const c = commits === 1 ? '1 commit' : `${commits} commits`;
  const f = files === 1 ? '1 file' : `${files} files`;
  return `Bottle ${agent} (${session}): ${c}, ${f}`;
}
