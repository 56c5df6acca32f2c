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
import { EgressWarnings, egressLogLine, policyLogLine, type EgressWarning } from './egress';
import { Log } from './log';
import { allowInManifest } from './manifestedit';
import { Reattacher } from './reattach';
import { Sessions } from './sessions';
import { BottleStatus } from './status';
import { Terminals } from './terminals';
import { BottlesTree } from './tree';
import { sessionOfExec, WorkCounts } from './work';
import { WorkCommands } from './workcommands';

let client: BottleClient | undefined;
let terminals: Terminals | undefined;

/** bottle.persistentSessions: bottles live in the per-user daemon and outlive the window. */
function persistent(): boolean {
  return vscode.workspace.getConfiguration('bottle').get<boolean>('persistentSessions', true);
}

export function activate(context: vscode.ExtensionContext): void {
  // A log channel stamps each line with its time and level.
  const channel = vscode.window.createOutputChannel('Bottle', { log: true });
  const log = new Log(channel);
  const showLog = () => channel.show(true);
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
      log: (line) => log.info(line),
      serverLine: (line) => log.server(line),
      serverCrashed: (info) => {
        // The daemon kept the bottles: attach again once the forwarder is back.
        reattachPending = remote;
        void tellCrash(info, showLog, log, c, remote);
      },
      approveEgress: (p, token) => approvals.answer(p, token),
    },
  });
  client = c;
  const sessions: Sessions = new Sessions(c, (line) => log.warn(line), context.workspaceState);
  const terms = new Terminals(c, persistent, (session, agent) => sessions.name(session, agent), context.workspaceState, (line) =>
    log.info(line),
  );
  terminals = terms;
  const reattach = new Reattacher(c, terms, (line) => log.warn(line));
  const approvals: Approvals = new Approvals({
    ask: (message, buttons) => vscode.window.showWarningMessage(message, ...buttons),
    agent: (session) => (sessions.find(session) ? sessions.name(session) : undefined),
    origin: (session) => sessions.origin(session),
    writeManifest: allowInManifest,
    allow: (session, entries) => c.allow(session, entries),
    error: (message) => void vscode.window.showErrorMessage(message),
    log: (line) => log.info(line),
  });
  const work = new WorkCounts(c, sessions, (line) => log.warn(line));
  const tree = new BottlesTree(sessions, work);
  const view = vscode.window.createTreeView('bottle.sessions', { treeDataProvider: tree });
  const status = new BottleStatus(sessions);
  const revealAllowlist = async (session: string): Promise<void> => {
    await vscode.commands.executeCommand('bottle.sessions.focus');
    const node = tree.allowlistOf(session);
    if (node) {
      await view.reveal(node, { select: true, focus: true, expand: true });
    }
  };
  const commands: Commands = new Commands({
    client: c,
    sessions,
    terminals: terms,
    reattach,
    log,
    showLog,
    revealAllowlist,
    engine: (engine) => status.setEngine(engine),
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
  void workCommands.clearTemp().catch((err: unknown) => log.warn(`clearing the review copies: ${errorMessage(err)}`));
  const egress = new EgressWarnings();

  context.subscriptions.push(
    channel,
    terms,
    tree,
    view,
    work,
    status,
    ...commands.register(),
    ...workCommands.register(),
    sessions.onDidChange(() => {
      void vscode.commands.executeCommand('setContext', 'bottle.hasBottles', sessions.live.length > 0);
      terms.rename();
      egress.retain(sessions.live.map((s) => s.session));
    }),
    c.onDidLogMessage((m) => {
      // A server of this window's own writes the same line to its stderr,
      // which the log has already; the daemon's stderr goes to its own file.
      if (remote) {
        log.message(m.type, m.message);
      }
    }),
    c.onDidExitExec((p) => {
      const session = sessionOfExec(p.exec, sessions.live);
      const argv = session ? sessions.find(session)?.execs.find((e) => e.exec === p.exec)?.argv : undefined;
      const what = argv?.length ? argv.join(' ') : p.exec;
      const how = p.code === -1 ? `ended${p.error ? `: ${p.error}` : ''}` : `exited with code ${p.code}`;
      log.info(`${session ? `${sessions.name(session)} (${session})` : 'bottle'}: ${what} ${how}`);
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
          .then((attached) => attached.length && log.info(`attached to ${attached.join(', ')}`))
          .catch((err: unknown) => log.warn(`attaching to the daemon's bottles: ${errorMessage(err)}`))
          .finally(() => void sessions.refresh());
      }
    }),
    c.onDidEgress((p) => {
      approvals.egress(p);
      const r = p.record;
      if (r.event === 'decision') {
        log.egress(egressLogLine(p), r.decision === 'deny');
      }
      if (r.event === 'policy') {
        log.egress(policyLogLine(p), r.decision !== 'allow');
        void sessions.refresh();
      }
      const name = sessions.find(p.session) ? `${sessions.name(p.session)} (${p.session})` : p.session;
      const w = egress.warning(p, name);
      if (w) {
        void warnRefusal(w, p.session, { client: c, log, showLog, revealAllowlist, refresh: () => sessions.refresh() });
      }
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (['serverPath', 'dockerHost', 'persistentSessions'].some((k) => e.affectsConfiguration(`bottle.${k}`))) {
        const closing = sessions.live.filter((s) => c.isAttached(s.session) && !s.persist).length;
        void restartForSettings(c, closing).then((stopped) => {
          reattachPending = stopped && persistent();
          if (reattachPending) {
            void c.ready().catch((err: unknown) => log.error(`bottle-rpc: ${errorMessage(err)}`));
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
    void c.ready().catch((err: unknown) => log.error(`bottle-rpc: ${errorMessage(err)}`));
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

interface RefusalDeps {
  client: BottleClient;
  log: Log;
  showLog: () => void;
  revealAllowlist: (session: string) => Promise<void>;
  refresh: () => Promise<void>;
}

/**
 * The notification of a refused connection: Allow for This Bottle when an
 * allowlist entry lets it through, and where the allowlist is shown.
 */
async function warnRefusal(w: EgressWarning, session: string, d: RefusalDeps): Promise<void> {
  const allow = 'Allow for This Bottle';
  const show = 'Show Allowlist';
  const logButton = 'Show Log';
  const a = await vscode.window.showWarningMessage(w.message, ...(w.entry ? [allow] : []), show, logButton);
  if (a === allow && w.entry) {
    try {
      await d.client.allow(session, [w.entry]);
      d.log.info(`bottle ${session}: allowed ${w.entry} from the refusal's notification`);
      void vscode.window.showInformationMessage(`${w.entry} is allowed for new connections of bottle ${session}.`);
      await d.refresh();
    } catch (err) {
      d.log.error(`allowing ${w.entry} in bottle ${session}: ${errorMessage(err)}`);
      void vscode.window.showErrorMessage(`Could not allow ${w.entry} in bottle ${session}: ${errorMessage(err)}`);
    }
  } else if (a === show) {
    await d.revealAllowlist(session);
  } else if (a === logButton) {
    d.showLog();
  }
}

async function tellCrash(info: CrashInfo, showLog: () => void, log: Log, c: BottleClient, remote: boolean): Promise<void> {
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
  const show = 'Show Log';
  if (info.restartInMs !== undefined) {
    const what = remote ? 'the bottle daemon keeps its persistent bottles' : 'its bottles were closed';
    const a = await vscode.window.showWarningMessage(
      `bottle-rpc ${how}; ${what}. Restarting it in ${Math.ceil(info.restartInMs / 1000)} s.`,
      show,
    );
    if (a === show) {
      showLog();
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
    await c.ready().catch((err: unknown) => log.error(`restart failed: ${errorMessage(err)}`));
  } else if (a === show) {
    showLog();
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
