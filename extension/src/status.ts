// The status bar item: how many bottles run, a spinner while one starts,
// and the engine they run on when it is not this machine's.

import * as vscode from 'vscode';
import type { Sessions } from './sessions';

export class BottleStatus implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('bottle.status', vscode.StatusBarAlignment.Left, 10);
  private readonly sub: { dispose(): void };
  /** The engine of the last preflight: `local`, or DOCKER_HOST's address. */
  private engine = 'local';

  constructor(private readonly sessions: Sessions) {
    this.item.name = 'Bottle';
    this.item.command = 'bottle.sessions.focus';
    this.sub = sessions.onDidChange(() => this.update());
    this.update();
  }

  /** The engine the server's preflight named; one that is not local shows in the item. */
  setEngine(engine: string): void {
    if (engine && engine !== this.engine) {
      this.engine = engine;
      this.update();
    }
  }

  private update(): void {
    const live = this.sessions.live;
    const starting = this.sessions.starting;
    const on = this.engine !== 'local' ? ` on ${this.engine}` : '';
    if (starting.length) {
      this.item.text = `$(loading~spin) Bottle: starting ${starting.join(', ')}${on}`;
    } else if (live.length) {
      this.item.text = `$(package) ${live.length} ${live.length === 1 ? 'bottle' : 'bottles'}${on}`;
    } else {
      this.item.hide();
      return;
    }
    const engine = this.engine !== 'local' ? `\nEngine: ${this.engine}` : '';
    this.item.tooltip = live.length
      ? `${live.map((s) => `${this.sessions.name(s.session)} (${s.session}, ${s.runtimeLabel ?? s.state})`).join('\n')}${engine}`
      : `Starting a bottle${engine}`;
    this.item.show();
  }

  dispose(): void {
    this.sub.dispose();
    this.item.dispose();
  }
}
