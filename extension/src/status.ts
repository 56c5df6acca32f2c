// The status bar item: how many bottles run, and a spinner while one starts.

import * as vscode from 'vscode';
import type { Sessions } from './sessions';

export class BottleStatus implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('bottle.status', vscode.StatusBarAlignment.Left, 10);
  private readonly sub: { dispose(): void };

  constructor(private readonly sessions: Sessions) {
    this.item.name = 'Bottle';
    this.item.command = 'bottle.sessions.focus';
    this.sub = sessions.onDidChange(() => this.update());
    this.update();
  }

  private update(): void {
    const live = this.sessions.live;
    const starting = this.sessions.starting;
    if (starting.length) {
      this.item.text = `$(loading~spin) Bottle: starting ${starting.join(', ')}`;
    } else if (live.length) {
      this.item.text = `$(package) ${live.length} ${live.length === 1 ? 'bottle' : 'bottles'}`;
    } else {
      this.item.hide();
      return;
    }
    this.item.tooltip = live.length
      ? live.map((s) => `${s.agent} (${s.session}, ${s.runtimeLabel ?? s.state})`).join('\n')
      : 'Starting a bottle';
    this.item.show();
  }

  dispose(): void {
    this.sub.dispose();
    this.item.dispose();
  }
}
