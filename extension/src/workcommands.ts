// Bringing the agent's work home from VS Code: Review Changes (the changes
// editor: base on the left, the bottle's version on the right), Fetch
// Changes as Branch, Copy out of Bottle..., and the question before a close
// that would lose work.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readlink, rm } from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { errorMessage, type BottleClient } from './client';
import { printable } from './egress';
import type { Log } from './log';
import type { ChangesResult, CloseResult, FetchResult, SessionInfo } from './protocol';
import {
  baseBlob,
  copyTarget,
  inBottle,
  reviewItems,
  reviewMaxBytes,
  reviewTitle,
  shownText,
  type ReviewItem,
} from './review';
import type { Sessions } from './sessions';
import { checkoutable, closeDetail, countOf, describeCount, describeFetch, isEmpty, isNoGit, type WorkCount, type WorkCounts } from './work';

export interface WorkDeps {
  client: BottleClient;
  sessions: Sessions;
  work: WorkCounts;
  log: Log;
  /** the extension's globalStorage: review copies go to its tmp folder */
  storage: vscode.Uri;
  pick: (node: unknown, question: string) => Promise<SessionInfo | undefined>;
  reportError: (what: string, err: unknown) => void;
}

export const reviewScheme = 'bottle-review';

/** The documents of the reviews: read-only, held in memory until the next review of the bottle. */
class ReviewDocuments implements vscode.TextDocumentContentProvider {
  private readonly docs = new Map<string, string>();

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.docs.get(uri.toString()) ?? '';
  }

  put(session: string, review: string, side: 'base' | 'bottle', i: number, repoPath: string, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: reviewScheme, authority: session, path: `/${review}/${side}/${i}/${repoPath}` });
    this.docs.set(uri.toString(), text);
    return uri;
  }

  /** Drops the documents of a bottle's earlier reviews. */
  clear(session: string): void {
    for (const key of [...this.docs.keys()]) {
      if (vscode.Uri.parse(key).authority === session) {
        this.docs.delete(key);
      }
    }
  }
}

export class WorkCommands {
  private readonly docs = new ReviewDocuments();

  constructor(private readonly d: WorkDeps) {}

  register(): vscode.Disposable[] {
    const reg = (id: string, f: (...args: unknown[]) => Promise<unknown>) => vscode.commands.registerCommand(id, f);
    return [
      vscode.workspace.registerTextDocumentContentProvider(reviewScheme, this.docs),
      reg('bottle.reviewChanges', (node) => this.review(node)),
      reg('bottle.fetchChanges', (node) => this.fetch(node)),
      reg('bottle.copyOut', (node) => this.copyOut(node)),
    ];
  }

  /** The folder of review copies: emptied at activation, as a crash may have left some. */
  async clearTemp(): Promise<void> {
    await rm(this.tempRoot(), { recursive: true, force: true });
  }

  // --- review -----------------------------------------------------------------

  private async review(node: unknown): Promise<void> {
    const s = await this.d.pick(node, 'Review the changes of which bottle?');
    if (!s) {
      return;
    }
    const what = `Review the changes of ${s.agent} (${s.session})`;
    const cwd = this.hostRepo(s);
    try {
      await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Reading the changes of bottle ${s.agent}`, cancellable: true },
        async (progress, token) => {
          const changes = await this.d.client.changes({ session: s.session, diff: true }, token);
          void this.d.work.refresh(s.session);
          this.logCommits(s, changes);
          if (!changes.files.length) {
            void vscode.window.showInformationMessage(
              `Bottle ${s.agent} (${s.session}) has no changes since ${changes.base.slice(0, 8)}.`,
            );
            return;
          }
          const { items, left, unsafe } = reviewItems(changes.files);
          for (const p of unsafe) {
            this.d.log.info(`review of ${s.session}: left out a path git would not print: ${JSON.stringify(p)}`);
          }
          const review = randomBytes(4).toString('hex');
          this.docs.clear(s.session);
          const shown = await this.sides(s, cwd, changes.base, review, items, token, (n) =>
            progress.report({ message: `${n} of ${items.length} files`, increment: 100 / items.length }),
          );
          if (token.isCancellationRequested) {
            return;
          }
          await this.show(s, changes, shown);
          if (left > 0 || unsafe.length > 0 || changes.truncated) {
            await this.showDiff(s, changes, left);
          }
        },
      );
    } catch (err) {
      if (isNoGit(err)) {
        this.noGit(s);
        return;
      }
      this.d.reportError(what, err);
    }
  }

  /** The two sides of each file, as documents of the review. */
  private async sides(
    s: SessionInfo,
    cwd: string | undefined,
    base: string,
    review: string,
    items: ReviewItem[],
    token: vscode.CancellationToken,
    step: (n: number) => void,
  ): Promise<{ item: ReviewItem; left?: vscode.Uri; right?: vscode.Uri }[]> {
    const root = path.join(this.tempRoot(), `review-${s.session}-${review}`);
    await mkdir(root, { recursive: true });
    const out: { item: ReviewItem; left?: vscode.Uri; right?: vscode.Uri }[] = [];
    let done = 0;
    try {
      // A few at a time: each copy out is an exec in the bottle.
      const queue = items.map((item, i) => ({ item, i }));
      const worker = async () => {
        for (let next = queue.shift(); next && !token.isCancellationRequested; next = queue.shift()) {
          const { item, i } = next;
          const [leftText, rightText] = await Promise.all([
            item.basePath !== undefined ? this.baseText(cwd, base, item.basePath) : undefined,
            item.bottlePath !== undefined ? this.bottleText(s, root, i, item.bottlePath, token) : undefined,
          ]);
          out[i] = {
            item,
            left: leftText === undefined ? undefined : this.docs.put(s.session, review, 'base', i, item.basePath!, leftText),
            right: rightText === undefined ? undefined : this.docs.put(s.session, review, 'bottle', i, item.path, rightText),
          };
          step(++done);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
    return out.filter(Boolean);
  }

  private async baseText(cwd: string | undefined, base: string, repoPath: string): Promise<string> {
    if (!cwd) {
      return '(no workspace folder to read the base version from)\n';
    }
    try {
      return shownText(await baseBlob(cwd, base, repoPath));
    } catch (err) {
      return `(the base version could not be read: ${errorMessage(err)})\n`;
    }
  }

  /** The bottle's version: copied out into a folder of its own, read, and removed. */
  private async bottleText(s: SessionInfo, root: string, i: number, repoPath: string, token: vscode.CancellationToken): Promise<string> {
    const { dir, file } = copyTarget(root, i, repoPath);
    await mkdir(dir);
    try {
      await this.d.client.cpOut(
        { session: s.session, containerPath: inBottle(s.workspace ?? '', repoPath), hostPath: file, maxBytes: reviewMaxBytes },
        token,
      );
      const st = await lstat(file);
      if (st.isSymbolicLink()) {
        // Shown as a link, never followed: its target is the host's, not the bottle's.
        return `(a symbolic link to ${await readlink(file)})\n`;
      }
      if (!st.isFile()) {
        return '(not a regular file)\n';
      }
      return shownText(await readFile(file));
    } catch (err) {
      return `(the bottle's version could not be copied out: ${errorMessage(err)})\n`;
    }
  }

  private async show(
    s: SessionInfo,
    changes: ChangesResult,
    shown: { item: ReviewItem; left?: vscode.Uri; right?: vscode.Uri }[],
  ): Promise<void> {
    const title = reviewTitle(s.agent, s.session, changes.commits.length, changes.files.length);
    const all = await vscode.commands.getCommands(true);
    if (all.includes('vscode.changes')) {
      const resources = shown.map(({ left, right }) => [(right ?? left)!, left, right]);
      await vscode.commands.executeCommand('vscode.changes', title, resources);
      return;
    }
    // Without the changes editor: one diff editor per file, the first few.
    const empty = vscode.Uri.from({ scheme: reviewScheme, authority: s.session, path: '/empty' });
    for (const { item, left, right } of shown.slice(0, 10)) {
      await vscode.commands.executeCommand('vscode.diff', left ?? empty, right ?? empty, `${item.path} (${title})`, {
        preview: false,
      });
    }
  }

  /** The unified diff, when the changes editor could not show everything. */
  private async showDiff(s: SessionInfo, changes: ChangesResult, left: number): Promise<void> {
    const notes = [
      left > 0 ? `${left} more files than a review shows are in this diff.` : undefined,
      changes.truncated ? 'The diff was cut at the server’s size limit.' : undefined,
    ].filter(Boolean);
    this.d.log.info(`review of ${s.session}: ${notes.join(' ')}`);
    const doc = await vscode.workspace.openTextDocument({ content: changes.diff ?? '', language: 'diff' });
    await vscode.window.showTextDocument(doc, { preview: false });
  }

  private logCommits(s: SessionInfo, c: ChangesResult): void {
    const commits = c.commits.map((commit) => `${commit.id.slice(0, 8)} ${printable(commit.subject)}`).join('; ');
    this.d.log.info(
      `${this.d.sessions.name(s.session)} (${s.session}): ${describeCount(countOf(c))} since ${c.base.slice(0, 8)}, head ${c.head.slice(0, 8)}${commits ? `: ${commits}` : ''}`,
    );
  }

  // --- fetch ------------------------------------------------------------------

  private async fetch(node: unknown): Promise<void> {
    const s = await this.d.pick(node, 'Fetch the changes of which bottle?');
    if (s) {
      await this.fetchSession(s);
    }
  }

  /** Fetches a bottle's work as a branch and offers to check it out; undefined when it failed. */
  private async fetchSession(s: SessionInfo): Promise<FetchResult | undefined> {
    let res: FetchResult;
    try {
      res = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Fetching the work of bottle ${s.agent}`, cancellable: true },
        (_, token) => this.d.client.fetch({ session: s.session }, token),
      );
    } catch (err) {
      if (isNoGit(err)) {
        this.noGit(s);
      } else {
        this.d.reportError(`Fetch the changes of ${s.agent} (${s.session})`, err);
      }
      return undefined;
    }
    await this.d.work.fetched(s.session);
    this.d.log.info(`fetch of ${s.session}: ${describeFetch(res)} head ${res.head}`);
    if (!res.branch) {
      void vscode.window.showInformationMessage(describeFetch(res));
      return res;
    }
    const checkout = 'Check Out';
    void vscode.window
      .showInformationMessage(`Fetched the work of bottle ${s.agent}. ${describeFetch(res)}`, checkout)
      .then((a) => (a === checkout ? this.checkout(s, res.branch) : undefined));
    return res;
  }

  /** git checkout BRANCH in the host repository: only when the user asks for it. */
  private async checkout(s: SessionInfo, branch: string): Promise<void> {
    const cwd = this.hostRepo(s);
    if (!cwd || !checkoutable(branch)) {
      void vscode.window.showErrorMessage(`Cannot check out ${JSON.stringify(branch)}: no workspace folder or not a branch name.`);
      return;
    }
    const out = await new Promise<{ ok: boolean; text: string }>((resolve) => {
      execFile('git', ['-C', cwd, 'checkout', branch], { env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } }, (err, stdout, stderr) =>
        resolve({ ok: !err, text: `${stdout}${stderr}`.trim() || (err?.message ?? '') }),
      );
    });
    this.d.log.info(`git checkout ${branch}: ${out.text.split('\n').join(' | ')}`);
    if (out.ok) {
      void vscode.window.showInformationMessage(`Checked out ${branch}.`);
    } else {
      void vscode.window.showErrorMessage(`git checkout ${branch} failed: ${out.text.split('\n').slice(0, 3).join(' ')}`);
    }
  }

  // --- copy out -----------------------------------------------------------------

  private async copyOut(node: unknown): Promise<void> {
    const s = await this.d.pick(node, 'Copy out of which bottle?');
    if (!s) {
      return;
    }
    const workspace = s.workspace ?? '';
    const containerPath = (
      await vscode.window.showInputBox({
        title: `Copy out of Bottle ${s.agent} (${s.session})`,
        prompt: 'Absolute path of a file or folder in the bottle',
        value: workspace,
        validateInput: (v) => (v.trim().startsWith('/') ? undefined : `Give an absolute path in the bottle, like ${workspace}/notes.md`),
      })
    )?.trim();
    if (!containerPath) {
      return;
    }
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    const name = path.posix.basename(containerPath) || 'bottle';
    const target = await vscode.window.showSaveDialog({
      title: `Copy ${containerPath} out of Bottle ${s.agent} to`,
      saveLabel: 'Copy out of Bottle',
      defaultUri: folder ? vscode.Uri.joinPath(folder, '..', `${name}-${s.session}`) : undefined,
    });
    if (!target) {
      return;
    }
    if (target.scheme !== 'file') {
      void vscode.window.showErrorMessage('A bottle copies out only to files on this machine.');
      return;
    }
    const hostPath = target.fsPath;
    let overwrite = false;
    if (await exists(hostPath)) {
      const replace = 'Replace';
      const a = await vscode.window.showWarningMessage(
        `${hostPath} exists. Replace it with ${containerPath} from bottle ${s.agent}?`,
        { modal: true, detail: 'A file is replaced; into a folder, the bottle’s files are copied over the ones of the same name.' },
        replace,
      );
      if (a !== replace) {
        return;
      }
      overwrite = true;
    }
    try {
      const res = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Copying ${containerPath} out of bottle ${s.agent}`, cancellable: true },
        (_, token) => this.d.client.cpOut({ session: s.session, containerPath, hostPath, overwrite }, token),
      );
      const msg = `Copied ${res.bytes} bytes from ${containerPath} in bottle ${this.d.sessions.name(s.session)} to ${hostPath}.`;
      this.d.log.info(`${msg.slice(0, -1)} (${s.session})`);
      void vscode.window.showInformationMessage(msg);
    } catch (err) {
      this.d.reportError(`Copy ${containerPath} out of ${s.agent} (${s.session})`, err);
    }
  }

  // --- closing ------------------------------------------------------------------

  /**
   * Before closing one bottle: when it has work no fetch brought home, asks
   * whether to fetch it first. True: go on with the close.
   */
  async confirmClose(s: SessionInfo): Promise<boolean> {
    const work = await this.unfetched(s);
    if (!work) {
      return true;
    }
    const fetchFirst = 'Fetch, then Close';
    const anyway = 'Close Anyway';
    const a = await vscode.window.showWarningMessage(
      `Close bottle ${this.d.sessions.name(s.session)}? The agent's work in it is not brought home: ${describeCount(work)}.`,
      {
        modal: true,
        detail: closeDetail(s),
      },
      fetchFirst,
      anyway,
    );
    this.d.log.info(`${this.d.sessions.name(s.session)} (${s.session}): asked before closing with ${describeCount(work)} not brought home: ${a ?? 'cancelled'}`);
    if (a === fetchFirst) {
      return (await this.fetchSession(s)) !== undefined;
    }
    return a === anyway;
  }

  /** The unfetched work of each bottle, for the question before closing them all. */
  async unfetchedOf(list: SessionInfo[]): Promise<{ s: SessionInfo; work: WorkCount }[]> {
    const all = await Promise.all(list.map(async (s) => ({ s, work: await this.unfetched(s) })));
    return all.filter((x): x is { s: SessionInfo; work: WorkCount } => x.work !== undefined);
  }

  /** What the close result says: a warning unless the user was asked about it. */
  closed(s: SessionInfo, res: CloseResult, asked: boolean): void {
    if (!res.unfetched || isEmpty(countOf(res.unfetched))) {
      return;
    }
    const msg = `Bottle ${s.agent} (${s.session}) was closed with work that was not fetched: ${describeCount(countOf(res.unfetched))}.`;
    this.d.log.info(msg);
    if (!asked) {
      void vscode.window.showWarningMessage(msg);
    }
  }

  private async unfetched(s: SessionInfo): Promise<WorkCount | undefined> {
    if (s.state !== 'ready') {
      return undefined;
    }
    try {
      return await this.d.work.unfetched(s.session);
    } catch (err) {
      // The close goes on; its result says what was lost.
      this.d.log.info(`checking ${s.session} for unfetched work: ${errorMessage(err)}`);
      return undefined;
    }
  }

  // --- helpers --------------------------------------------------------------------

  private noGit(s: SessionInfo): void {
    const copy = 'Copy out of Bottle...';
    void vscode.window
      .showInformationMessage(
        `Bottle ${s.agent} (${s.session}) was started without its workspace's .git, so it has no history to review or fetch. Copy out of Bottle copies files out of it; setting bottle.copyGit copies .git into the next bottle.`,
        copy,
      )
      .then((a) => (a === copy ? vscode.commands.executeCommand('bottle.copyOut', { kind: 'session', info: s }) : undefined));
  }

  /** The host repository of a session: the folder this window started it in, else the first workspace folder. */
  private hostRepo(s: SessionInfo): string | undefined {
    return this.d.sessions.origin(s.session)?.cwd ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  }

  private tempRoot(): string {
    return path.join(this.d.storage.fsPath, 'tmp');
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}
