// A headless xterm, the emulator VS Code renders terminals with: the tests
// feed it what a Pseudoterminal writes and read the screen a user would see.

import { Terminal } from '@xterm/headless';
import type { ExecTerminal } from '../../src/terminal';

export class Screen {
  readonly term: Terminal;
  private writes: Promise<void> = Promise.resolve();

  constructor(
    readonly cols: number,
    readonly rows: number,
  ) {
    this.term = new Terminal({ cols, rows, allowProposedApi: true, scrollback: 1000 });
  }

  /** Shows pty on this screen, as VS Code does when it opens the terminal. */
  show(pty: ExecTerminal): void {
    pty.onDidWrite((s) => {
      this.writes = this.writes.then(() => new Promise<void>((r) => this.term.write(s, r)));
    });
    pty.open({ columns: this.cols, rows: this.rows });
  }

  resize(pty: ExecTerminal, cols: number, rows: number): void {
    this.term.resize(cols, rows);
    pty.setDimensions({ columns: cols, rows });
  }

  /** The visible rows, right-trimmed, one per line. */
  text(): string {
    const buf = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < this.term.rows; i++) {
      lines.push(buf.getLine(buf.viewportY + i)?.translateToString(true) ?? '');
    }
    return lines.join('\n');
  }

  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.writes;
      const text = this.text();
      if (pattern.test(text)) {
        return text;
      }
      if (Date.now() > deadline) {
        throw new Error(`screen never showed ${pattern} in ${timeoutMs} ms; it shows:\n${text}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
