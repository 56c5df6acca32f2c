// Wires the extension together: the client, the log, the views, the
// commands, what the server tells the user, and coming back to the
// bottles that outlived the last window.

import { existsSync } from 'node:fs';
import { daemonSocket } from './daemon';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { BottleClient, errorMessage, type CrashInfo, type ServerSpec } from './client';
import { Commands } from './commands';
import { Approvals } from './approvals';
import { EgressWarnings, egressLogLine, policyLogLine, printable } from './egress';
import { allowInManifest } from './manifestedit';
import { Reattacher } from './reattach';
import { Sessions } from './sessions';
import { BottleStatus } from './status';
import { Terminals } from './terminals';
import { BottlesTree } from './tree';
import { WorkCounts } from './work';
import { WorkCommands } from './workcommands';

let client: BottleClient | undefined;
let terminals: Terminals | undefined;

/** bottle.persistentSessions: bottles live in the per-user daemon and outlive the window. */
function persistent(): boolean {
  return vscode.workspace.getConfiguration('bottle').get<boolean>('persistentSessions', true);
}

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Bottle');
  const serverSpec = (): ServerSpec => resolveServer(context.extensionPath);
  /** Whether the server last started forwards to the daemon. */
  let remote = false;
  /** Attach to the daemon's bottles once the server runs (activation, a restart after a crash). */
  let reattachPending = false;
  const c: BottleClient = new BottleClient({
    server: () => {
      const spec = serverSpec();
      remote = spec.args.includes('--remote=auto');
      return spec;
    },
    remote: () => remote,
    clientInfo: { name: 'vscode-bottle', version: (context.extension.packageJSON as { version?: string }).version ?? '' },
    host: {
      log: (line) => log.appendLine(line),
      serverCrashed: (info) => {
        // The daemon kept the bottles: attach again once the forwarder is back.
        reattachPending = remote;
        void tellCrash(info, log, c, remote);
      },
      approveEgress: (p, token) => approvals.answer(p, token),
    },
  });
  client = c;
  const sessions: Sessions = new Sessions(c, (line) => log.appendLine(line));
  const terms = new Terminals(c, persistent);
  terminals = terms;
  const reattach = new Reattacher(c, terms, (line) => log.appendLine(line));
  const approvals: Approvals = new Approvals({
    ask: (message, buttons) => vscode.window.showWarningMessage(message, ...buttons),
    agent: (session) => sessions.find(session)?.agent,
    origin: (session) => sessions.origin(session),
    writeManifest: allowInManifest,
    allow: (session, entries) => c.allow(session, entries),
    error: (message) => void vscode.window.showErrorMessage(message),
    log: (line) => log.appendLine(line),
  });
  const work = new WorkCounts(c, sessions, (line) => log.appendLine(line));
  const commands: Commands = new Commands({
    client: c,
    sessions,
    terminals: terms,
    reattach,
    log,
    serverSpec,
    persistent,
    work: () => workCommands,
  });
  const workCommands = new WorkCommands({
    client: c,
    sessions,
    work,
    log,
    storage: context.globalStorageUri,
    pick: (node, question) => commands.pickSession(node, question),
    reportError: (what, err) => commands.reportError(what, err),
  });
  void workCommands.clearTemp().catch((err: unknown) => log.appendLine(`clearing the review copies: ${errorMessage(err)}`));
  const tree = new BottlesTree(sessions, work);
  const egress = new EgressWarnings();

  context.subscriptions.push(
    log,
    terms,
    tree,
    work,
    new BottleStatus(sessions),
    vscode.window.registerTreeDataProvider('bottle.sessions', tree),
    ...commands.register(),
    ...workCommands.register(),
    sessions.onDidChange(() => {
      void vscode.commands.executeCommand('setContext', 'bottle.hasBottles', sessions.live.length > 0);
      egress.retain(sessions.live.map((s) => s.session));
    }),
    c.onDidLogMessage((m) => {
      const level = ['', 'error', 'warning', 'info', 'log'][m.type] ?? 'log';
      log.appendLine(`[${level}] ${printable(m.message)}`);
    }),
    c.onDidChangeSessionState((p) => {
      if (p.state === 'closed') {
        // Closed here or in another window: its terminals only show an ended process.
        terms.closeSession(p.session);
      }
    }),
    c.onDidChangeState((state) => {
      if (state === 'running' && reattachPending) {
        reattachPending = false;
        void reattach
          .all()
          .then((attached) => attached.length && log.appendLine(`attached to ${attached.join(', ')}`))
          .catch((err: unknown) => log.appendLine(`attaching to the daemon's bottles: ${errorMessage(err)}`))
          .finally(() => void sessions.refresh());
      }
    }),
    c.onDidEgress((p) => {
      approvals.egress(p);
      const r = p.record;
      if (r.event === 'decision') {
        log.appendLine(egressLogLine(p));
      }
      if (r.event === 'policy') {
        log.appendLine(policyLogLine(p));
        void sessions.refresh();
      }
      const msg = egress.warning(p, sessions.find(p.session)?.agent ?? p.session);
      if (msg) {
        const show = 'Show Log';
        void vscode.window.showWarningMessage(msg, show).then((a) => a === show && log.show(true));
      }
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (['serverPath', 'dockerHost', 'persistentSessions'].some((k) => e.affectsConfiguration(`bottle.${k}`))) {
        const closing = sessions.live.filter((s) => c.isAttached(s.session) && !s.persist).length;
        void restartForSettings(c, closing).then((stopped) => {
          reattachPending = stopped && persistent();
          if (reattachPending) {
            void c.ready().catch((err: unknown) => log.appendLine(`bottle-rpc: ${errorMessage(err)}`));
          }
        });
      }
    }),
  );

  // Bottles of an earlier window run on in the daemon: come back to them.
  // With no daemon socket there are none, and no daemon is started for nothing.
  const spec = serverSpec();
  if (persistent() && existsSync(daemonSocket(spec.env))) {
    reattachPending = true;
    void c.ready().catch((err: unknown) => log.appendLine(`bottle-rpc: ${errorMessage(err)}`));
  }
}

export async function deactivate(): Promise<void> {
  // The window's terminals close with it; in persistent mode their
  // processes run on, and shutdown closes only this connection's
  // non-persistent bottles (in the other mode: every bottle).
  terminals?.leave();
  terminals = undefined;
  await client?.dispose();
  client = undefined;
}

/** bottle.serverPath, else the binary bundled in the .vsix, else PATH. */
function resolveServer(extensionPath: string): ServerSpec {
  const config = vscode.workspace.getConfiguration('bottle');
  const bundled = path.join(extensionPath, 'bin', 'bottle-rpc');
  const command = config.get<string>('serverPath', '').trim() || (existsSync(bundled) ? bundled : 'bottle-rpc');
  const env = { ...process.env };
  const dockerHost = config.get<string>('dockerHost', '').trim();
  if (dockerHost) {
    env.DOCKER_HOST = dockerHost;
  }
  return { command, args: persistent() ? ['serve', '--remote=auto'] : ['serve'], env };
}

async function tellCrash(info: CrashInfo, log: vscode.OutputChannel, c: BottleClient, remote: boolean): Promise<void> {
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
  const show = 'Show Log';
  if (info.restartInMs !== undefined) {
    const what = remote ? 'the bottle daemon keeps its persistent bottles' : 'its bottles were closed';
    const a = await vscode.window.showWarningMessage(
      `bottle-rpc ${how}; ${what}. Restarting it in ${Math.ceil(info.restartInMs / 1000)} s.`,
      show,
    );
    if (a === show) {
      log.show(true);
    }
    return;
  }
  const restart = 'Restart';
  const a = await vscode.window.showErrorMessage(
    `bottle-rpc ${how} again and is not restarted any more. See the log for why.`,
    restart,
    show,
  );
  if (a === restart) {
    await c.ready().catch((err: unknown) => log.appendLine(`restart failed: ${errorMessage(err)}`));
  } else if (a === show) {
    log.show(true);
  }
}

/**
 * A new server path, Docker host or mode applies to the next server.
 * closing: the bottles its end closes (persistent ones stay in the
 * daemon). True when the server was stopped.
 */
async function restartForSettings(c: BottleClient, closing: number): Promise<boolean> {
  if (c.state !== 'running') {
    return false;
  }
  if (closing === 0) {
    await c.stop();
    return true;
  }
  const liveBottles = closing;
  const restart = 'Restart Now';
  const a = await vscode.window.showInformationMessage(
    `The new Bottle settings apply once bottle-rpc restarts, which closes ${liveBottles} running ${liveBottles === 1 ? 'bottle' : 'bottles'}.`,
    restart,
  );
  if (a === restart) {
    await c.stop();
    return true;
  }
  return false;
}
