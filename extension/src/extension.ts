// Wires the extension together: the client, the log, the views, the
// commands, and what the server tells the user.

import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { BottleClient, errorMessage, type CrashInfo, type ServerSpec } from './client';
import { Commands } from './commands';
import { Approvals } from './approvals';
import { EgressWarnings, egressLogLine, policyLogLine, printable } from './egress';
import { allowInManifest } from './manifestedit';
import { MessageType } from './protocol';
import { Sessions } from './sessions';
import { BottleStatus } from './status';
import { BottlesTree } from './tree';

let client: BottleClient | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Bottle');
  const serverSpec = (): ServerSpec => resolveServer(context.extensionPath);
  const c: BottleClient = new BottleClient({
    server: serverSpec,
    clientInfo: { name: 'vscode-bottle', version: (context.extension.packageJSON as { version?: string }).version ?? '' },
    host: {
      log: (line) => log.appendLine(line),
      serverCrashed: (info) => void tellCrash(info, log, c),
      approveEgress: (p, token) => approvals.answer(p, token),
    },
  });
  client = c;
  const sessions: Sessions = new Sessions(c, (line) => log.appendLine(line));
  const approvals: Approvals = new Approvals({
    ask: (message, buttons) => vscode.window.showWarningMessage(message, ...buttons),
    agent: (session) => sessions.find(session)?.agent,
    origin: (session) => sessions.origin(session),
    writeManifest: allowInManifest,
    allow: (session, entries) => c.allow(session, entries),
    error: (message) => void vscode.window.showErrorMessage(message),
    log: (line) => log.appendLine(line),
  });
  const commands = new Commands({ client: c, sessions, log, serverSpec });
  const tree = new BottlesTree(sessions);
  const egress = new EgressWarnings();

  context.subscriptions.push(
    log,
    tree,
    new BottleStatus(sessions),
    vscode.window.registerTreeDataProvider('bottle.sessions', tree),
    ...commands.register(),
    sessions.onDidChange(() => {
      void vscode.commands.executeCommand('setContext', 'bottle.hasBottles', sessions.live.length > 0);
      egress.retain(sessions.live.map((s) => s.session));
    }),
    c.onDidLogMessage((m) => {
      const level = ['', 'error', 'warning', 'info', 'log'][m.type] ?? 'log';
      log.appendLine(`[${level}] ${printable(m.message)}`);
      if (m.type === MessageType.info) {
        void sessions.refresh();
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
      if (e.affectsConfiguration('bottle.serverPath') || e.affectsConfiguration('bottle.dockerHost')) {
        void restartForSettings(c, sessions.live.length);
      }
    }),
  );
}

export async function deactivate(): Promise<void> {
  // shutdown makes the server tear every bottle down before it exits.
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
  return { command, args: ['serve'], env };
}

async function tellCrash(info: CrashInfo, log: vscode.OutputChannel, c: BottleClient): Promise<void> {
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
  const show = 'Show Log';
  if (info.restartInMs !== undefined) {
    const a = await vscode.window.showWarningMessage(
      `bottle-rpc ${how}; its bottles were closed. Restarting it in ${Math.ceil(info.restartInMs / 1000)} s.`,
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

/** A new server path or Docker host applies to the next server. */
async function restartForSettings(c: BottleClient, liveBottles: number): Promise<void> {
  if (c.state !== 'running') {
    return;
  }
  if (liveBottles === 0) {
    await c.stop();
    return;
  }
  const restart = 'Restart Now';
  const a = await vscode.window.showInformationMessage(
    `The new Bottle settings apply once bottle-rpc restarts, which closes ${liveBottles} running ${liveBottles === 1 ? 'bottle' : 'bottles'}.`,
    restart,
  );
  if (a === restart) {
    await c.stop();
  }
}
