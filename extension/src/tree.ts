// The Bottles view: one item per session, its processes under it.

import * as vscode from 'vscode';
import { printable } from './egress';
import type { ExecInfo, SessionInfo } from './protocol';
import { isAgentExec } from './names';
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

/** A fact about a session shown under it: the host folder, the runtime. */
export interface InfoNode {
  kind: 'info';
  session: SessionInfo;
  what: 'folder' | 'runtime';
  text: string;
}

export type Node = SessionNode | ExecNode | AllowlistNode | AllowNode | InfoNode;

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
  private readonly nodes = new Map<string, Node>();

  constructor(
    private readonly sessions: Sessions,
    private readonly work?: WorkView,
  ) {
    this.subs = [
      sessions.onDidChange(() => {
        this.forgetGone();
        this.changed.fire(undefined);
      }),
    ];
    if (work) {
      this.subs.push(work.onDidChange(() => this.changed.fire(undefined)));
    }
  }

  getChildren(node?: Node): Node[] {
    if (!node) {
      return this.sessions.live.map((info) => this.node({ kind: 'session', info }));
    }
    switch (node.kind) {
      case 'session': {
        const s = node.info;
        const folder = this.sessions.folder(s.session);
        const runtime = s.runtimeLabel ?? s.runtime;
        return [
          ...(folder ? [this.node({ kind: 'info', session: s, what: 'folder', text: folder } as const)] : []),
          ...(runtime ? [this.node({ kind: 'info', session: s, what: 'runtime', text: runtime } as const)] : []),
          ...(s.allow ? [this.node({ kind: 'allowlist', session: s } as const)] : []),
          ...this.sessions.shownExecs(s).map((info) => this.node({ kind: 'exec', session: s, info } as const)),
        ];
      }
      case 'allowlist':
        return (node.session.allow ?? []).map((entry) => this.node({ kind: 'allow', session: node.session, entry } as const));
      default:
        return [];
    }
  }

  /** The parent of a node, for reveal. */
  getParent(node: Node): Node | undefined {
    switch (node.kind) {
      case 'session':
        return undefined;
      case 'allow':
        return this.nodes.get(nodeId({ kind: 'allowlist', session: node.session }));
      default:
        return this.nodes.get(nodeId({ kind: 'session', info: node.session }));
    }
  }

  /** The allowlist node of a session, for reveal; undefined when it has none. */
  allowlistOf(session: string): AllowlistNode | undefined {
    const s = this.sessions.live.find((x) => x.session === session);
    if (!s?.allow) {
      return undefined;
    }
    // Its parent first: reveal walks up through getParent.
    this.node({ kind: 'session', info: s });
    return this.node({ kind: 'allowlist', session: s });
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case 'session':
        return sessionItem(
          node.info,
          this.sessions.name(node.info.session),
          this.sessions.folder(node.info.session),
          this.sessions.attachedHere(node.info.session),
          this.work?.get(node.info.session),
        );
      case 'exec':
        return execItem(node);
      case 'allowlist':
        return allowlistItem(node.session);
      case 'allow':
        return allowItem(node);
      case 'info':
        return infoItem(node);
    }
  }

  /**
   * The one node object of an id, brought up to date: reveal finds a node
   * by the object getChildren gave, so each id keeps its object.
   */
  private node<N extends Node>(n: N): N {
    const id = nodeId(n);
    const old = this.nodes.get(id) as N | undefined;
    if (old) {
      Object.assign(old, n);
      return old;
    }
    this.nodes.set(id, n);
    return n;
  }

  /** Drops the nodes of sessions that are gone. */
  private forgetGone(): void {
    const live = new Set(this.sessions.live.map((s) => s.session));
    for (const [id, n] of this.nodes) {
      if (!live.has(n.kind === 'session' ? n.info.session : n.session.session)) {
        this.nodes.delete(id);
      }
    }
  }

  dispose(): void {
    this.subs.forEach((s) => s.dispose());
    this.changed.dispose();
  }
}

export function nodeId(n: Node): string {
  switch (n.kind) {
    case 'session':
      return `session:${n.info.session}`;
    case 'exec':
      return `exec:${n.info.exec}`;
    case 'allowlist':
      return `allowlist:${n.session.session}`;
    case 'allow':
      return `allow:${n.session.session}:${n.entry}`;
    case 'info':
      return `info:${n.session.session}:${n.what}`;
  }
}

function sessionItem(
  s: SessionInfo,
  name: string,
  folder: string | undefined,
  attachedHere: boolean,
  work: WorkCount | undefined,
): vscode.TreeItem {
  // Always expanded: an item that first showed without children would
  // keep whatever state the view gave it then.
  const item = new vscode.TreeItem(name, vscode.TreeItemCollapsibleState.Expanded);
  item.id = `session:${s.session}`;
  item.description = [describeSession(s, attachedHere), work && `changed ${describeCount(work)}`].filter(Boolean).join(' · ');
  item.iconPath = attachedHere
    ? (sessionIcons[s.state] ?? new vscode.ThemeIcon('package'))
    : new vscode.ThemeIcon('debug-disconnect');
  item.contextValue = sessionContext(s, attachedHere);
  const tip = new vscode.MarkdownString();
  tip.appendMarkdown(`**${escapeMd(name)}**: agent ${escapeMd(s.agent)} in bottle \`${s.session}\` (${s.state})\n\n`);
  if (folder) {
    tip.appendMarkdown(`- host folder ${escapeMd(folder)}\n`);
  }
  if (s.allow) {
    tip.appendMarkdown(`- egress allowed to: ${s.allow.length ? s.allow.map((a) => escapeMd(printable(a))).join(', ') : 'nothing'}\n`);
  }
  if (s.persist) {
    const windows = s.attached === 1 ? '1 window' : `${s.attached} windows`;
    tip.appendMarkdown(
      `Outlives the window; attached to ${windows}${attachedHere ? ', this one among them' : ', not this one'}.\n\n`,
    );
  }
  if (s.container) {
    tip.appendMarkdown(`- runtime ${s.runtimeLabel ?? s.runtime}\n- container \`${s.container}\`\n- image \`${s.image}\`\n`);
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
  item.contextValue = e.running ? 'bottle.exec.running' : isAgentExec(e) ? 'bottle.exec.exited.agent' : 'bottle.exec.exited';
  item.tooltip = `${e.exec}: ${e.argv.join(' ') || node.session.agent}${e.error ? `\n${e.error}` : ''}`;
  item.command = { command: 'bottle.showTerminal', title: 'Show Terminal', arguments: [node] };
  return item;
}

function infoItem(node: InfoNode): vscode.TreeItem {
  const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
  item.id = `info:${node.session.session}:${node.what}`;
  item.iconPath = new vscode.ThemeIcon(node.what === 'folder' ? 'folder' : 'shield');
  item.description = node.what === 'folder' ? 'host folder' : 'runtime';
  item.tooltip = node.what === 'folder' ? `The host folder copied into the bottle: ${node.text}` : `The container runtime: ${node.text}`;
  item.contextValue = `bottle.info.${node.what}`;
  return item;
}

/** Text shown as Markdown but meant literally. */
function escapeMd(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, (c) => `\\${c}`);
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
