// The Bottles view: one item per session, its processes under it.

import * as vscode from 'vscode';
import type { ExecInfo, SessionInfo } from './protocol';
import { describeSession, type Sessions } from './sessions';

export interface SessionNode {
  kind: 'session';
  info: SessionInfo;
}

export interface ExecNode {
  kind: 'exec';
  session: SessionInfo;
  info: ExecInfo;
}

export type Node = SessionNode | ExecNode;

export function isSessionNode(x: unknown): x is SessionNode {
  return typeof x === 'object' && x !== null && (x as Partial<SessionNode>).kind === 'session';
}

export function isExecNode(x: unknown): x is ExecNode {
  return typeof x === 'object' && x !== null && (x as Partial<ExecNode>).kind === 'exec';
}

/**
 * How an exec is named: the command line given to Run Command, else the
 * program (the agent's own command carries long flags), else the agent.
 */
export function execLabel(session: SessionInfo, exec: ExecInfo): string {
  const [program, flag, line] = exec.argv;
  if (!program) {
    return session.agent;
  }
  return program === 'sh' && flag === '-c' && line ? line : program.split('/').pop() || program;
}

const sessionIcons: Record<string, vscode.ThemeIcon> = {
  starting: new vscode.ThemeIcon('loading~spin'),
  ready: new vscode.ThemeIcon('package'),
  closing: new vscode.ThemeIcon('loading~spin'),
  failed: new vscode.ThemeIcon('error', new vscode.ThemeColor('errorForeground')),
};

export class BottlesTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly sub: { dispose(): void };

  constructor(private readonly sessions: Sessions) {
    this.sub = sessions.onDidChange(() => this.changed.fire(undefined));
  }

  getChildren(node?: Node): Node[] {
    if (!node) {
      return this.sessions.live.map((info) => ({ kind: 'session', info }));
    }
    if (node.kind === 'session') {
      return node.info.execs.map((info) => ({ kind: 'exec', session: node.info, info }));
    }
    return [];
  }

  getTreeItem(node: Node): vscode.TreeItem {
    return node.kind === 'session' ? sessionItem(node.info) : execItem(node);
  }

  dispose(): void {
    this.sub.dispose();
    this.changed.dispose();
  }
}

function sessionItem(s: SessionInfo): vscode.TreeItem {
  const item = new vscode.TreeItem(
    s.agent,
    s.execs.length ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None,
  );
  item.id = `session:${s.session}`;
  item.description = describeSession(s);
  item.iconPath = sessionIcons[s.state] ?? new vscode.ThemeIcon('package');
  item.contextValue = `bottle.session.${s.state}`;
  const tip = new vscode.MarkdownString();
  tip.appendMarkdown(`**${s.agent}** in bottle \`${s.session}\` (${s.state})\n\n`);
  if (s.container) {
    tip.appendMarkdown(`- container \`${s.container}\`\n- runtime ${s.runtimeLabel ?? s.runtime}\n- image \`${s.image}\`\n`);
  }
  if (s.error) {
    tip.appendMarkdown(`\n${s.error}`);
  }
  item.tooltip = tip;
  return item;
}

function execItem(node: ExecNode): vscode.TreeItem {
  const e = node.info;
  const item = new vscode.TreeItem(execLabel(node.session, e), vscode.TreeItemCollapsibleState.None);
  item.id = `exec:${e.exec}`;
  item.description = e.running ? 'running' : e.code === -1 ? 'ended' : `exited ${e.code ?? ''}`.trim();
  item.iconPath = new vscode.ThemeIcon(e.running ? 'terminal' : 'circle-slash');
  item.contextValue = e.running ? 'bottle.exec.running' : 'bottle.exec.exited';
  item.tooltip = `${e.exec}: ${e.argv.join(' ') || node.session.agent}${e.error ? `\n${e.error}` : ''}`;
  item.command = { command: 'bottle.showTerminal', title: 'Show Terminal', arguments: [node] };
  return item;
}
