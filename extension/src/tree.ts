// The Bottles view: one item per session, its processes under it.

import * as vscode from 'vscode';
import { printable } from './egress';
import type { ExecInfo, SessionInfo } from './protocol';
import { describeSession, sessionContext, type Sessions } from './sessions';
import { describeCount, type WorkCount } from './work';

/** The per-bottle counts of the agent's work the view shows. */
export interface WorkView {
  get(session: string): WorkCount | undefined;
  readonly onDidChange: (listener: () => void) => { dispose(): void };
}

export interface SessionNode {
  kind: 'session';
  info: SessionInfo;
}

export interface ExecNode {
  kind: 'exec';
  session: SessionInfo;
  info: ExecInfo;
}

/** A session's live egress allowlist, its entries under it. */
export interface AllowlistNode {
  kind: 'allowlist';
  session: SessionInfo;
}

export interface AllowNode {
  kind: 'allow';
  session: SessionInfo;
  entry: string;
}

export type Node = SessionNode | ExecNode | AllowlistNode | AllowNode;

export function isSessionNode(x: unknown): x is SessionNode {
  return typeof x === 'object' && x !== null && (x as Partial<SessionNode>).kind === 'session';
}

export function isExecNode(x: unknown): x is ExecNode {
  return typeof x === 'object' && x !== null && (x as Partial<ExecNode>).kind === 'exec';
}

export function isAllowlistNode(x: unknown): x is AllowlistNode {
  return typeof x === 'object' && x !== null && (x as Partial<AllowlistNode>).kind === 'allowlist';
}

export function isAllowNode(x: unknown): x is AllowNode {
  return typeof x === 'object' && x !== null && (x as Partial<AllowNode>).kind === 'allow';
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
  private readonly subs: { dispose(): void }[];

  constructor(
    private readonly sessions: Sessions,
    private readonly work?: WorkView,
  ) {
    this.subs = [sessions.onDidChange(() => this.changed.fire(undefined))];
    if (work) {
      this.subs.push(work.onDidChange(() => this.changed.fire(undefined)));
    }
  }

  getChildren(node?: Node): Node[] {
    if (!node) {
      return this.sessions.live.map((info) => ({ kind: 'session', info }));
    }
    switch (node.kind) {
      case 'session':
        return [
          ...(node.info.allow ? [{ kind: 'allowlist', session: node.info } as const] : []),
          ...node.info.execs.map((info) => ({ kind: 'exec', session: node.info, info }) as const),
        ];
      case 'allowlist':
        return (node.session.allow ?? []).map((entry) => ({ kind: 'allow', session: node.session, entry }));
      default:
        return [];
    }
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case 'session':
        return sessionItem(node.info, this.sessions.attachedHere(node.info.session), this.work?.get(node.info.session));
      case 'exec':
        return execItem(node);
      case 'allowlist':
        return allowlistItem(node.session);
      case 'allow':
        return allowItem(node);
    }
  }

  dispose(): void {
    this.subs.forEach((s) => s.dispose());
    this.changed.dispose();
  }
}

function sessionItem(s: SessionInfo, attachedHere: boolean, work: WorkCount | undefined): vscode.TreeItem {
  const item = new vscode.TreeItem(
    s.agent,
    s.execs.length || s.allow ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None,
  );
  item.id = `session:${s.session}`;
  item.description = [describeSession(s, attachedHere), work && `changed ${describeCount(work)}`].filter(Boolean).join(' · ');
  item.iconPath = attachedHere
    ? (sessionIcons[s.state] ?? new vscode.ThemeIcon('package'))
    : new vscode.ThemeIcon('debug-disconnect');
  item.contextValue = sessionContext(s, attachedHere);
  const tip = new vscode.MarkdownString();
  tip.appendMarkdown(`**${s.agent}** in bottle \`${s.session}\` (${s.state})\n\n`);
  if (s.persist) {
    const windows = s.attached === 1 ? '1 window' : `${s.attached} windows`;
    tip.appendMarkdown(
      `Outlives the window; attached to ${windows}${attachedHere ? ', this one among them' : ', not this one'}.\n\n`,
    );
  }
  if (s.container) {
    tip.appendMarkdown(`- container \`${s.container}\`\n- runtime ${s.runtimeLabel ?? s.runtime}\n- image \`${s.image}\`\n`);
  }
  if (work) {
    tip.appendMarkdown(`\nThe agent changed ${describeCount(work)} since the start: Review Changes shows them.\n`);
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

function allowlistItem(s: SessionInfo): vscode.TreeItem {
  const allow = s.allow ?? [];
  const item = new vscode.TreeItem('Egress allowlist', vscode.TreeItemCollapsibleState.Collapsed);
  item.id = `allowlist:${s.session}`;
  item.description = allow.length ? `${allow.length} ${allow.length === 1 ? 'entry' : 'entries'}` : 'nothing: every host is refused';
  item.iconPath = new vscode.ThemeIcon('globe');
  item.contextValue = 'bottle.allowlist';
  item.tooltip = allow.length ? allow.map(printable).join('\n') : 'No host is allowed.';
  return item;
}

function allowItem(node: AllowNode): vscode.TreeItem {
  const item = new vscode.TreeItem(printable(node.entry), vscode.TreeItemCollapsibleState.None);
  item.id = `allow:${node.session.session}:${node.entry}`;
  item.iconPath = new vscode.ThemeIcon('pass');
  item.contextValue = 'bottle.allow';
  return item;
}
