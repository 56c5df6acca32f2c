// The Bottle commands: start, terminals, commands, copy, attach, detach,
// close, log, gc.

import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ErrorCodes, ResponseError } from 'vscode-jsonrpc';
import type { BottleClient, ServerSpec } from './client';
import { describeError, type ErrorAction } from './errors';
import type { Log } from './log';
import { isAgentExec } from './names';
import type { PlanResult, SessionInfo } from './protocol';
import type { Reattacher } from './reattach';
import { describeSession, type Sessions } from './sessions';
import type { Terminals } from './terminals';
import { execLabel, isAllowlistNode, isAllowNode, isExecNode, isSessionNode } from './tree';
import { describePlan } from './preflight';
import { describeCount } from './work';
import type { WorkCommands } from './workcommands';

export interface CommandDeps {
  client: BottleClient;
  sessions: Sessions;
  terminals: Terminals;
  reattach: Reattacher;
  log: Log;
  /** shows the Bottle output channel */
  showLog: () => void;
  /** reveals a bottle's allowlist in the Bottles view */
  revealAllowlist: (session: string) => Promise<void>;
  /** the engine of the last preflight: the status bar names one that is not local */
  engine: (engine: string) => void;
  serverSpec: () => ServerSpec;
  /** bottle.persistentSessions: bottles outlive the window */
  persistent: () => boolean;
  /** asks before a close would lose the agent's work, and says what a close lost */
  work: () => WorkCommands;
}

export class Commands {
  constructor(private readonly d: CommandDeps) {}

  register(): vscode.Disposable[] {
    const reg = (id: string, f: (...args: unknown[]) => Promise<void> | void) =>
      vscode.commands.registerCommand(id, f);
    return [
      reg('bottle.startAgent', () => this.startAgent()),
      reg('bottle.openTerminal', (node) => this.openTerminal(node)),
      reg('bottle.runCommand', (node) => this.runCommand(node)),
      reg('bottle.copyFile', (arg) => this.copyFile(arg)),
      reg('bottle.closeBottle', (node) => this.closeBottle(node)),
      reg('bottle.closeAll', () => this.closeAll()),
      reg('bottle.showLog', () => this.d.showLog()),
      reg('bottle.runAgent', (node) => this.runAgent(node)),
      reg('bottle.clearExited', (node) => this.clearExited(node)),
      reg('bottle.showAllowlist', (node) => this.showAllowlist(node)),
      reg('bottle.gc', () => this.gc()),
      reg('bottle.refresh', () => this.d.sessions.refresh()),
      reg('bottle.showTerminal', (node) => this.showTerminal(node)),
      reg('bottle.killProcess', (node) => this.killProcess(node)),
      reg('bottle.allowHost', (node) => this.allowHost(node)),
      reg('bottle.disallowHost', (node) => this.disallowHost(node)),
      reg('bottle.attach', (node) => this.attach(node)),
      reg('bottle.detach', (node) => this.detach(node)),
    ];
  }

  // --- start ------------------------------------------------------------------

  private async startAgent(): Promise<void> {
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const manifest = manifestPath(cwd);
    let agent: string | undefined;
    let plan: PlanResult;
    try {
      const agents = await this.agents(manifest, cwd);
      agent = await this.pickAgent(agents, manifest);
      if (!agent) {
        return;
      }
      plan = await this.d.client.plan({ agent, manifest, cwd });
      this.d.engine(plan.engine);
    } catch (err) {
      this.reportError(agent ? `Preflight of ${agent}` : 'Reading the agents', err);
      return;
    }
    const git = gitRepo(cwd);
    const copyGit = git !== undefined && vscode.workspace.getConfiguration('bottle').get<boolean>('copyGit', true);
    if (vscode.workspace.getConfiguration('bottle').get<boolean>('confirmBeforeStart', true)) {
      const start = 'Start';
      const answer = await vscode.window.showInformationMessage(
        `Start ${plan.agent} in a bottle?`,
        { modal: true, detail: describePlan(plan, git === undefined ? undefined : { from: git, copied: copyGit }) },
        start,
      );
      if (answer !== start) {
        return;
      }
    }

    const name = agent;
    const started = vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Starting bottle ${name}`, cancellable: true },
      (progress, token) => {
        let done = 0;
        return this.d.client.start(
          { agent: name, manifest, cwd, persist: this.d.persistent(), ...(copyGit ? { copyGit } : {}) },
          (p) => {
            if (p.kind !== 'report') {
              return;
            }
            const pct = p.percentage ?? done;
            progress.report({ message: p.message, increment: Math.max(0, pct - done) });
            done = Math.max(done, pct);
          },
          token,
        );
      },
    );
    let session: string;
    try {
      ({ session } = await this.d.sessions.track(name, started));
    } catch (err) {
      this.reportError(`Start ${name}`, err);
      return;
    }
    // What Always Allow needs: which file and bottle to write, and the
    // allowlist a bottle without one of its own had.
    this.d.sessions.remember(session, {
      manifest,
      inWorkspace: manifest !== undefined && vscode.workspace.getWorkspaceFolder(vscode.Uri.file(manifest)) !== undefined,
      bottle: plan.bottle,
      allow: plan.allow,
      cwd,
    });
    this.d.log.info(`started ${this.d.sessions.name(session)} (bottle ${session}${cwd ? `, folder ${cwd}` : ''})`);
    await this.openExec(session, undefined);
  }

  /** The manifest's agents. */
  private async agents(manifest: string | undefined, cwd: string | undefined): Promise<string[]> {
    const res = await this.d.client.agents({ manifest, cwd });
    return res.agents.map((a) => a.name);
  }

  private async pickAgent(agents: string[], manifest: string | undefined): Promise<string | undefined> {
    const source = manifest ? vscode.workspace.asRelativePath(manifest) : 'the built-in manifest';
    const picked = await vscode.window.showQuickPick(
      agents.map((a) => ({ label: a, description: source })),
      { title: 'Start Agent in a Bottle', placeHolder: 'Agent to start' },
    );
    return picked?.label;
  }

  // --- terminals and processes --------------------------------------------------

  private async openTerminal(node: unknown): Promise<void> {
    const s = await this.pickSession(node, 'Open a terminal in which bottle?');
    if (s) {
      await this.openExec(s.session, ['bash', '-l']);
    }
  }

  private async runCommand(node: unknown): Promise<void> {
    const s = await this.pickSession(node, 'Run a command in which bottle?');
    if (!s) {
      return;
    }
    const line = await vscode.window.showInputBox({
      title: `Run Command in Bottle ${this.d.sessions.name(s.session)}`,
      prompt: 'A shell command line; it runs in the agent workspace as the agent user',
      placeHolder: 'git status',
    });
    if (line?.trim()) {
      await this.openExec(s.session, ['sh', '-c', line]);
    }
  }

  /** Runs the agent again in a bottle whose agent exited (or alongside a running one). */
  private async runAgent(node: unknown): Promise<void> {
    const s = await this.pickSession(isExecNode(node) ? { kind: 'session', info: node.session } : node, 'Run the agent again in which bottle?');
    if (s) {
      await this.openExec(s.session, undefined);
    }
  }

  /** Runs argv (the agent when undefined) in a new terminal, and logs it. */
  private async openExec(session: string, argv: string[] | undefined): Promise<void> {
    this.d.log.info(`${this.d.sessions.name(session)} (${session}): running ${argv ? argv.join(' ') : 'the agent'}`);
    await this.d.terminals.open(session, argv);
    await this.d.sessions.refresh();
  }

  private async showTerminal(node: unknown): Promise<void> {
    if (!isExecNode(node) || this.d.terminals.show(node.info.exec)) {
      return;
    }
    const what = execLabel(node.session, node.info);
    if (node.info.running && !this.d.sessions.attachedHere(node.session.session)) {
      void vscode.window.showInformationMessage(`${what} runs in a bottle this window is not attached to: attach to see it.`);
      return;
    }
    if (node.info.running || node.session.state !== 'ready') {
      void vscode.window.showInformationMessage(`${what} has no terminal in this window any more.`);
      return;
    }
    // An exited process: offer to run it again.
    const agent = isAgentExec(node.info);
    const again = agent ? 'Run Agent Again' : 'Run Again';
    const how = node.info.code === undefined || node.info.code === -1 ? 'ended' : `exited with code ${node.info.code}`;
    const a = await vscode.window.showInformationMessage(`${what} ${how}; its terminal is closed.`, again);
    if (a === again) {
      await this.openExec(node.session.session, agent ? undefined : node.info.argv);
    }
  }

  /** Takes a bottle's exited processes out of the Bottles view. */
  private async clearExited(node: unknown): Promise<void> {
    const s = await this.pickSession(isExecNode(node) ? { kind: 'session', info: node.session } : node, 'Clear the exited processes of which bottle?', true);
    if (s) {
      const n = this.d.sessions.clearExited(s.session);
      this.d.log.info(`${this.d.sessions.name(s.session)} (${s.session}): cleared ${n} exited ${n === 1 ? 'process' : 'processes'} from the view`);
    }
  }

  /** Shows a bottle's allowlist in the Bottles view. */
  private async showAllowlist(node: unknown): Promise<void> {
    const s = typeof node === 'string' ? this.d.sessions.find(node) : await this.pickSession(node, 'Show the allowlist of which bottle?');
    if (s) {
      await this.d.revealAllowlist(s.session);
    }
  }

  // --- attach and detach --------------------------------------------------------

  /** Attaches this window to a bottle and opens its running processes' terminals. */
  private async attach(node: unknown): Promise<void> {
    await this.d.sessions.refresh();
    const s = isSessionNode(node)
      ? node.info
      : await this.pick(
          this.d.sessions.live.filter((x) => !this.d.sessions.attachedHere(x.session)),
          'Attach to which bottle?',
          'Every bottle is attached to this window.',
        );
    if (!s) {
      return;
    }
    if (!(await this.d.reattach.one(s.session))) {
      this.reportError(`Attach to ${this.d.sessions.name(s.session)} (${s.session})`, new Error('the server refused; see the log'));
    }
    await this.d.sessions.refresh();
  }

  /** Closes this window's terminals of a bottle and leaves it running. */
  private async detach(node: unknown): Promise<void> {
    await this.d.sessions.refresh();
    const s = isSessionNode(node)
      ? node.info
      : await this.pick(
          this.d.sessions.live.filter((x) => this.d.sessions.attachedHere(x.session)),
          'Detach from which bottle?',
          'No bottle is attached to this window.',
        );
    if (!s) {
      return;
    }
    this.d.terminals.detachSession(s.session);
    try {
      await this.d.client.detach(s.session);
    } catch (err) {
      this.reportError(`Detach from ${this.d.sessions.name(s.session)} (${s.session})`, err);
    }
    await this.d.sessions.refresh();
  }

  private async pick(list: SessionInfo[], question: string, none: string): Promise<SessionInfo | undefined> {
    if (list.length <= 1) {
      if (!list.length) {
        void vscode.window.showInformationMessage(none);
      }
      return list[0];
    }
    const picked = await vscode.window.showQuickPick(
      list.map((s) => ({
        label: this.d.sessions.name(s.session),
        description: describeSession(s, this.d.sessions.attachedHere(s.session)),
        session: s,
      })),
      { placeHolder: question },
    );
    return picked?.session;
  }

  private killProcess(node: unknown): void {
    if (isExecNode(node)) {
      this.d.client.kill(node.info.exec);
    }
  }

  // --- egress ---------------------------------------------------------------------

  /**
   * Adds an entry to a bottle's live allowlist. The server checks it with
   * the proxy's own parser; a rejected entry opens the box again with the
   * server's reason.
   */
  private async allowHost(node: unknown): Promise<void> {
    const s = await this.pickSession(isAllowlistNode(node) ? { kind: 'session', info: node.session } : node, 'Allow a host for which bottle?');
    if (!s) {
      return;
    }
    let rejected: { entry: string; why: string } | undefined;
    for (;;) {
      const entry = (
        await vscode.window.showInputBox({
          title: `Allow a Host for Bottle ${this.d.sessions.name(s.session)}`,
          prompt: 'An allowlist entry as bottle.yaml writes it: host (ports 80 and 443), host:port, host:*, *.domain',
          placeHolder: 'github.com',
          value: rejected?.entry,
          ignoreFocusOut: true,
          validateInput: (v) => (rejected && v.trim() === rejected.entry ? rejected.why : undefined),
        })
      )?.trim();
      if (!entry) {
        return;
      }
      try {
        await this.d.client.allow(s.session, [entry]);
        void vscode.window.showInformationMessage(`Bottle ${this.d.sessions.name(s.session)} may now reach ${entry}.`);
        this.d.log.info(`${this.d.sessions.name(s.session)} (${s.session}): allowed ${entry}`);
        await this.d.sessions.refresh();
        return;
      } catch (err) {
        if (err instanceof ResponseError && err.code === ErrorCodes.InvalidParams) {
          rejected = { entry, why: describeError(`Allow ${entry}`, err)?.message ?? err.message };
          continue;
        }
        this.reportError(`Allow ${entry}`, err);
        return;
      }
    }
  }

  /** Takes an entry off a bottle's live allowlist (the tree's entry item). */
  private async disallowHost(node: unknown): Promise<void> {
    if (!isAllowNode(node)) {
      return;
    }
    try {
      await this.d.client.disallow(node.session.session, [node.entry]);
      this.d.log.info(`${this.d.sessions.name(node.session.session)} (${node.session.session}): removed ${node.entry} from the allowlist`);
    } catch (err) {
      this.reportError(`Remove ${node.entry}`, err);
    }
    await this.d.sessions.refresh();
  }

  // --- files --------------------------------------------------------------------

  private async copyFile(arg: unknown): Promise<void> {
    const s = await this.pickSession(arg, 'Copy into which bottle?');
    if (!s) {
      return;
    }
    const name = this.d.sessions.name(s.session);
    let source = arg instanceof vscode.Uri ? arg : undefined;
    if (!source) {
      const picked = await vscode.window.showOpenDialog({
        title: `Copy into Bottle ${name}`,
        canSelectFiles: true,
        canSelectFolders: true,
        canSelectMany: false,
        openLabel: 'Copy into Bottle',
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
      });
      source = picked?.[0];
    }
    if (!source) {
      return;
    }
    if (source.scheme !== 'file') {
      void vscode.window.showErrorMessage('Only files on this machine can be copied into a bottle.');
      return;
    }
    // The server reports where the agent's workspace is: images differ.
    const workspace = s.workspace ?? '';
    const folder = isFolder(source.fsPath);
    const target = await vscode.window.showInputBox({
      title: `Copy ${folder ? 'the folder ' : ''}${path.basename(source.fsPath)} into Bottle ${name}`,
      prompt: folder ? 'Absolute path in the bottle the folder is copied to' : 'Absolute path in the bottle',
      value: `${workspace}/${path.basename(source.fsPath)}`,
      validateInput: (v) => (v.startsWith('/') ? undefined : `Give an absolute path in the bottle, like ${workspace}/notes.md`),
    });
    if (!target) {
      return;
    }
    const hostPath = source.fsPath;
    try {
      const res = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Copying ${path.basename(hostPath)}`, cancellable: true },
        (_, token) => this.d.client.cp({ session: s.session, hostPath, containerPath: target }, token),
      );
      const msg = `Copied ${folder ? 'the folder ' : ''}${hostPath} (${formatBytes(res.bytes)}) to ${target} in bottle ${name}.`;
      this.d.log.info(`${msg.slice(0, -1)} (${s.session})`);
      void vscode.window.showInformationMessage(msg);
    } catch (err) {
      this.reportError(`Copy ${path.basename(hostPath)}`, err);
    }
  }

  // --- closing --------------------------------------------------------------------

  private async closeBottle(node: unknown): Promise<void> {
    const s = await this.pickSession(node, 'Close which bottle?', true);
    if (s && (await this.d.work().confirmClose(s))) {
      await this.close([s], true);
    }
  }

  private async closeAll(): Promise<void> {
    await this.d.sessions.refresh();
    const live = this.d.sessions.live;
    if (!live.length) {
      void vscode.window.showInformationMessage('No bottle is running.');
      return;
    }
    const unfetched = await this.d.work().unfetchedOf(live);
    const lost = unfetched.map(({ s, work }) => `  ${this.d.sessions.name(s.session)}: ${describeCount(work)}`);
    const ok = 'Close All';
    const answer = await vscode.window.showWarningMessage(
      `Close ${live.length} ${live.length === 1 ? 'bottle' : 'bottles'}?`,
      {
        modal: true,
        detail: [
          'Their processes end and their containers, networks and images are removed, and with them the agents’ edits in the bottles.',
          ...(lost.length ? ['Work not brought home (Fetch Changes as Branch brings it home):', ...lost] : []),
        ].join('\n'),
      },
      ok,
    );
    if (answer === ok) {
      await this.close(live, true);
    }
  }

  /** Closes bottles; asked: the user saw what unfetched work they had. */
  private async close(list: SessionInfo[], asked: boolean): Promise<void> {
    const title = list.length === 1 ? `Closing bottle ${this.d.sessions.name(list[0]!.session)}` : `Closing ${list.length} bottles`;
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title }, () =>
      Promise.all(
        list.map(async (s) => {
          try {
            const name = this.d.sessions.name(s.session);
            const res = await this.d.client.close(s.session);
            this.d.log.info(`closed ${name} (${s.session})`);
            // Its terminals only have an ended process left to show.
            this.d.terminals.closeSession(s.session);
            this.d.work().closed(s, res, asked);
          } catch (err) {
            this.reportError(`Close ${this.d.sessions.name(s.session)} (${s.session})`, err);
          }
        }),
      ),
    );
    await this.d.sessions.refresh();
  }

  // --- housekeeping -------------------------------------------------------------------

  private async gc(): Promise<void> {
    const spec = this.d.serverSpec();
    const out = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Removing orphaned bottles' },
      () =>
        new Promise<{ ok: boolean; text: string }>((resolve) => {
          execFile(spec.command, ['gc'], { env: spec.env, timeout: 300_000 }, (err, stdout, stderr) => {
            resolve({ ok: !err, text: `${stdout}${stderr}`.trim() || (err?.message ?? '') });
          });
        }),
    );
    for (const line of out.text.split('\n').filter((l) => l.trim())) {
      this.d.log.info(`bottle-rpc gc: ${line}`);
    }
    const lines = out.text.split('\n').filter((l) => l.trim());
    const removed = lines.filter((l) => l.startsWith('removed ')).length;
    if (!out.ok) {
      this.reportError('Clean Up Orphans', new Error(lines.at(-1) ?? 'bottle-rpc gc failed'));
    } else {
      void vscode.window.showInformationMessage(
        removed ? `Removed ${removed} orphaned bottle resources.` : 'No orphaned bottles.',
      );
    }
  }

  // --- helpers ------------------------------------------------------------------------

  /**
   * The session a command is about: the tree item it was run on, the only
   * running one, or the user's pick. Closing accepts any live state.
   */
  async pickSession(arg: unknown, question: string, anyState = false): Promise<SessionInfo | undefined> {
    if (isSessionNode(arg)) {
      return arg.info;
    }
    await this.d.sessions.refresh();
    const candidates = this.d.sessions.live.filter((s) => anyState || s.state === 'ready');
    if (candidates.length === 0) {
      const start = 'Start Agent...';
      const answer = await vscode.window.showInformationMessage('No bottle is running.', start);
      if (answer === start) {
        await vscode.commands.executeCommand('bottle.startAgent');
      }
      return undefined;
    }
    if (candidates.length === 1) {
      return candidates[0];
    }
    const picked = await vscode.window.showQuickPick(
      candidates.map((s) => ({
        label: this.d.sessions.name(s.session),
        description: describeSession(s, this.d.sessions.attachedHere(s.session)),
        session: s,
      })),
      { placeHolder: question },
    );
    return picked?.session;
  }

  reportError(what: string, err: unknown): void {
    const report = describeError(what, err);
    if (!report) {
      return;
    }
    this.d.log.error(report.message);
    const buttons = report.actions.map((a) => ({ title: actionTitle(a), action: a }));
    void vscode.window.showErrorMessage(report.message, ...buttons).then((b) => b && this.runAction(b.action));
  }

  private async runAction(a: ErrorAction): Promise<void> {
    switch (a.kind) {
      case 'showLog':
        this.d.showLog();
        return;
      case 'openSetting':
        await vscode.commands.executeCommand('workbench.action.openSettings', a.setting);
        return;
      case 'openManifest': {
        const doc = await vscode.workspace.openTextDocument(a.file);
        const line = Math.max(0, (a.line ?? 1) - 1);
        await vscode.window.showTextDocument(doc, { selection: new vscode.Range(line, 0, line, 0) });
        return;
      }
      case 'cleanUp':
        await vscode.commands.executeCommand('bottle.gc');
        return;
    }
  }
}

function actionTitle(a: ErrorAction): string {
  switch (a.kind) {
    case 'showLog':
      return 'Show Log';
    case 'openSetting':
      return 'Open Settings';
    case 'openManifest':
      return 'Open Manifest';
    case 'cleanUp':
      return 'Clean Up Orphans';
  }
}

/**
 * The manifest setting resolved against the workspace; else the
 * workspace's bottle.yaml; else undefined, the server's built-in manifest.
 */
function manifestPath(cwd: string | undefined): string | undefined {
  const setting = vscode.workspace.getConfiguration('bottle').get<string>('manifest', '').trim();
  if (setting) {
    return path.isAbsolute(setting) || !cwd ? setting : path.join(cwd, setting);
  }
  const local = cwd ? path.join(cwd, 'bottle.yaml') : undefined;
  return local && existsSync(local) ? local : undefined;
}

/** The workspace's .git folder when it is a git repository (bottle/start's copyGit needs a folder). */
function gitRepo(cwd: string | undefined): string | undefined {
  const git = cwd ? path.join(cwd, '.git') : undefined;
  try {
    return git && statSync(git).isDirectory() ? git : undefined;
  } catch {
    return undefined;
  }
}

function isFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function formatBytes(n: number): string {
  if (n < 1024) {
    return `${n} bytes`;
  }
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
