// The window's Bottle terminals: one per exec, made for a new process or
// reopened for one that ran on while the window reloaded.

import * as vscode from 'vscode';
import type { BottleClient } from './client';
import { describeError } from './errors';
import type { ExecInfo, SessionInfo } from './protocol';
import { execTitle, isAgentExec, terminalTitle } from './names';
import type { TerminalOpener } from './reattach';
import { ExecTerminal, type Dimensions, type ExecSink } from './terminal';

/** What an agent's terminal says after the agent exits. */
const agentAgain = 'Bottle: Run Agent Again starts it anew';

/** What the window's panel held, kept across a reload (a vscode.Memento). */
export interface PanelStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

interface PanelRecord {
  /** Bottle terminals open */
  bottle: number;
  /** other terminals open */
  others: number;
}

const panelKey = 'bottle.panel';

/** How long after activation the editor may still open the shell it opens in an empty panel. */
const startupShellMs = 15_000;

interface Entry {
  terminal: vscode.Terminal;
  pty: ExecTerminal;
  session: string;
  /** what it runs (undefined: the agent), for its name */
  argv: readonly string[] | undefined;
  /** its name now */
  name: string;
  exec?: string;
  /** closing the terminal leaves the process running (persistent mode) */
  keep: boolean;
}

/** How long a new terminal may take to open before its exec starts anyway. */
const openWaitMs = 3000;

export class Terminals implements TerminalOpener, vscode.Disposable {
  private readonly entries: Entry[] = [];
  private lastDims: Dimensions | undefined;
  /** The window is going away: its terminals close, their processes stay. */
  private leaving = false;
  private readonly subs: vscode.Disposable[];

  /**
   * @param persistent bottles outlive the window: a terminal closed by a
   *   reload leaves its process running, one the user closed ends it
   * @param bottleName the bottle's name as the user knows it ("claude · myrepo")
   * @param panel where what the panel held is kept across a reload
   * @param log the extension's log
   */
  constructor(
    private readonly client: BottleClient,
    private readonly persistent: () => boolean,
    private readonly bottleName: (session: string, agent?: string) => string,
    private readonly panel?: PanelStore,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.subs = [
      vscode.window.onDidCloseTerminal((t) => {
        if (t.exitStatus?.reason === vscode.TerminalExitReason.Shutdown) {
          // The window is going: what its panel held is recorded already.
          this.leaving = true;
        }
        this.closed(t);
        this.record();
      }),
      vscode.window.onDidOpenTerminal(() => this.record()),
    ];
    this.sweepStartupShell();
  }

  /**
   * Runs argv (the agent's command when undefined) in a new terminal named
   * after the bottle. The exec starts once the terminal opens, at its
   * size, so that the agent's queries to the terminal are answered while
   * it waits for them; a terminal that does not open soon (a hidden
   * panel) gets its output held.
   */
  async open(session: string, argv: string[] | undefined): Promise<void> {
    const name = terminalTitle(this.bottleName(session), argv);
    const keep = this.persistent();
    const pty = this.pty(keep, argv === undefined);
    const terminal = vscode.window.createTerminal({ name, pty, iconPath: new vscode.ThemeIcon('package'), isTransient: true });
    const entry: Entry = { terminal, pty, session, keep, argv, name };
    this.entries.push(entry);
    terminal.show();
    const dims = (await Promise.race([pty.opened, delay(openWaitMs)])) ?? this.lastDims ?? { columns: 80, rows: 24 };
    try {
      const exec = await this.client.exec({ session, argv, cols: dims.columns, rows: dims.rows }, pty);
      entry.exec = exec;
      pty.attach(exec, dims);
    } catch (err) {
      const report = describeError(`Run ${argv?.join(' ') ?? 'the agent'}`, err);
      pty.fail(report?.message ?? 'cancelled');
    }
  }

  /** exec has a live terminal here (one whose connection ended does not count). */
  has(exec: string): boolean {
    return this.entries.some((e) => e.exec === exec && !e.pty.ended);
  }

  /**
   * A terminal for an exec that ran on without one; the size it opens at is
   * sent. A terminal left from a connection that ended gives way to it.
   */
  reopen(session: SessionInfo, exec: ExecInfo): ExecSink {
    for (const stale of this.entries.filter((x) => x.exec === exec.exec)) {
      this.remove(stale);
      stale.terminal.dispose();
    }
    const keep = this.persistent();
    const pty = this.pty(keep, isAgentExec(exec));
    pty.attach(exec.exec);
    const name = execTitle(this.bottleName(session.session, session.agent), exec);
    const terminal = vscode.window.createTerminal({ name, pty, iconPath: new vscode.ThemeIcon('package'), isTransient: true });
    this.entries.push({ terminal, pty, session: session.session, exec: exec.exec, keep, argv: exec.argv, name });
    terminal.show(true);
    return pty;
  }

  /**
   * Names each terminal after its bottle again: a bottle's name grows a
   * short id when another of the same agent and folder starts, and loses
   * it when that one closes.
   */
  rename(): void {
    for (const e of this.entries) {
      const name = terminalTitle(this.bottleName(e.session), e.argv);
      if (name !== e.name) {
        e.name = name;
        e.pty.rename(name);
      }
    }
  }

  /** Brings exec's terminal forward; false when this window has none. */
  show(exec: string): boolean {
    const e = this.entries.find((x) => x.exec === exec);
    e?.terminal.show();
    return e !== undefined;
  }

  /** Closes a session's terminals: it closed, they only have an ended process left to show. */
  closeSession(session: string): void {
    for (const e of this.entries.filter((x) => x.session === session)) {
      this.remove(e);
      e.terminal.dispose();
    }
  }

  /** Closes a session's terminals and leaves their processes running (Detach). */
  detachSession(session: string): void {
    for (const e of this.entries.filter((x) => x.session === session)) {
      this.remove(e);
      if (e.exec) {
        this.client.forget(e.exec);
      }
      e.terminal.dispose();
    }
  }

  /** The window is closing or reloading: no terminal it closes ends a process any more. */
  leave(): void {
    this.leaving = true;
  }

  dispose(): void {
    this.leaving = true;
    for (const s of this.subs) {
      s.dispose();
    }
  }

  private pty(keepOnClose: boolean, agent: boolean): ExecTerminal {
    return new ExecTerminal(this.client, {
      onDimensions: (d) => {
        this.lastDims = d;
      },
      keepOnClose,
      ...(agent ? { afterExit: agentAgain } : {}),
    });
  }

  /** Keeps what the panel holds, for the next window of this workspace. */
  private record(): void {
    if (this.leaving || !this.panel) {
      return;
    }
    const ours = new Set(this.entries.map((e) => e.terminal));
    const open = vscode.window.terminals.filter((t) => t.exitStatus === undefined);
    const rec: PanelRecord = { bottle: open.filter((t) => ours.has(t)).length, others: open.filter((t) => !ours.has(t)).length };
    void this.panel.update(panelKey, rec);
  }

  /**
   * A window reloaded with Bottle terminals in its panel, and nothing
   * else, opens with a host shell in their place (the editor's panel
   * fills itself when it is shown empty), easily taken for the bottle.
   * That shell, untouched, is closed: the bottles' own terminals come back
   * when their bottles outlived the window, else the panel is left empty.
   */
  private sweepStartupShell(): void {
    const prev = this.panel?.get<PanelRecord>(panelKey);
    if (!prev || prev.bottle === 0 || prev.others > 0) {
      return;
    }
    let done = false;
    const sweep = (t: vscode.Terminal): void => {
      if (done || this.entries.some((e) => e.terminal === t) || t.state.isInteractedWith || t.exitStatus !== undefined) {
        return;
      }
      done = true;
      this.log(`closed the host shell the editor opened in place of the last window's Bottle terminals (${t.name})`);
      t.dispose();
    };
    vscode.window.terminals.forEach(sweep);
    const sub = vscode.window.onDidOpenTerminal(sweep);
    const timer = setTimeout(() => {
      sub.dispose();
    }, startupShellMs);
    this.subs.push(sub, { dispose: () => clearTimeout(timer) });
  }

  private closed(t: vscode.Terminal): void {
    const e = this.entries.find((x) => x.terminal === t);
    if (!e) {
      return;
    }
    this.remove(e);
    // A reload (Shutdown) closes every terminal; the user closes one. A
    // terminal that does not keep its process ended it itself.
    if (e.keep && !this.leaving && t.exitStatus?.reason !== vscode.TerminalExitReason.Shutdown) {
      e.pty.kill();
    }
  }

  private remove(e: Entry): void {
    const i = this.entries.indexOf(e);
    if (i >= 0) {
      this.entries.splice(i, 1);
    }
  }
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}
