// One terminal per exec: the byte handling behind a VS Code Pseudoterminal.
// This module does not import vscode: ExecTerminal has the Pseudoterminal
// shape (vscode-jsonrpc's Event is VS Code's), so the same object is handed
// to window.createTerminal and driven directly by the tests.

import { Emitter, type Event } from 'vscode-jsonrpc';
import type { ExitParams } from './protocol';

export interface Dimensions {
  columns: number;
  rows: number;
}

/** Receives one exec's output and its end. */
export interface ExecSink {
  /**
   * resync: the connection fell behind the server's scrollback and data
   * continues from the oldest kept byte: the screen starts over.
   */
  output(exec: string, data: Uint8Array, resync?: boolean): void;
  exit(params: ExitParams): void;
}

/** What a terminal sends to its exec (the client implements it). */
export interface ExecChannel {
  input(exec: string, data: Uint8Array): void;
  resize(exec: string, cols: number, rows: number): void;
  ack(exec: string, bytes: number): void;
  kill(exec: string): void;
}

type Pending = { kind: 'output'; data: Uint8Array } | { kind: 'reset' } | { kind: 'end'; text: string };

export interface ExecTerminalOptions {
  /** hears the sizes the editor gives the terminal */
  onDimensions?: (d: Dimensions) => void;
  /**
   * Closing the terminal leaves its process running: the caller kills it
   * with kill() when the user, not a window reload, closed it.
   */
  keepOnClose?: boolean;
  /** said after the exit, e.g. how to run the agent again */
  afterExit?: string;
}

const encoder = new TextEncoder();

/**
 * One reply the terminal emulator sends by itself, not the user: focus
 * in/out, mouse events, cursor position, status, device attributes, mode
 * (DECRPM), keyboard protocol flags and window reports, and any OSC or DCS
 * string (colour, version and setting queries). The agent may have turned
 * reports on and not off, and a reply to a query it wrote just before its
 * exit can come in after the exit is shown: an emulator busy drawing
 * answers late. No key sends one of these: keys end in A-D, H, F, P-S or ~.
 */
const reply = String.raw`\x1b\[(?:I|O|<[\d;]*[Mm]|M[\s\S]{3}|\d+;\d+R|\d*n|\?[\d;]*n|[?>][\d;]*c|\??[\d;]*\$y|\?\d*u|[\d;]*t)` +
  String.raw`|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1bP[\s\S]*?\x1b\\`;

/** Input made only of replies: see reply. Several may come in one piece. */
const terminalReport = new RegExp(`^(?:${reply})+$`);

/** RIS, a full reset: what the screen showed is gone, scrollback too. */
const fullReset = '\x1bc';

/**
 * Turns off what an ended process may have left on: focus reports, mouse
 * tracking, bracketed paste, a hidden cursor.
 */
const resetModes = '\x1b[?1004l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?25h';

/**
 * A Pseudoterminal on one exec. Make it, hand it to the editor, then attach
 * it to the exec id once bottle/exec answers (or fail it when the exec could
 * not start). Output that arrives before the editor opened the terminal is
 * kept, unacknowledged, until it opens: the editor drops what is written
 * before, and the missing acks hold the exec back meanwhile.
 */
export class ExecTerminal implements ExecSink {
  private readonly writeEmitter = new Emitter<string>();
  private readonly closeEmitter = new Emitter<void>();
  readonly onDidWrite: Event<string> = this.writeEmitter.event;
  /**
   * Fires without an exit code: the terminal already said how the process
   * ended, and a code would make the editor say it again in a notification.
   */
  readonly onDidClose: Event<void> = this.closeEmitter.event;
  private readonly nameEmitter = new Emitter<string>();
  /** The terminal's new name: a second bottle of the same agent and folder makes the first one's longer. */
  readonly onDidChangeName: Event<string> = this.nameEmitter.event;
  private markOpened: (d: Dimensions | undefined) => void = () => undefined;
  /** Settles when the editor opens the terminal, with its size if it gave one. */
  readonly opened = new Promise<Dimensions | undefined>((resolve) => {
    this.markOpened = resolve;
  });

  private decoder = new TextDecoder('utf-8');
  private execId: string | undefined;
  private isOpen = false;
  private pending: Pending[] = [];
  /** Input typed before the exec id was known. */
  private earlyInput: Uint8Array[] = [];
  private dims: Dimensions | undefined;
  private sentDims: Dimensions | undefined;
  /** The exec ended and the terminal said so: it waits for a key, then closes. */
  private endShown = false;
  private exited = false;
  private closed = false;
  private killWanted = false;

  /**
   * @param channel where input, resizes, acks and kills go
   */
  constructor(
    private readonly channel: ExecChannel,
    private readonly options: ExecTerminalOptions = {},
  ) {}

  /**
   * Binds the terminal to its exec and sends what waited for the id (input,
   * and the editor's size if it differs from startedAt). An exec this
   * terminal did not start (one attached to again) has no known size:
   * without startedAt the editor's size is sent once known.
   */
  attach(exec: string, startedAt?: Dimensions): void {
    this.execId = exec;
    this.sentDims = startedAt;
    if (this.closed) {
      // The user closed the terminal while the exec was starting.
      if (!this.exited && this.killWanted) {
        this.channel.kill(exec);
      }
      return;
    }
    for (const data of this.earlyInput) {
      this.channel.input(exec, data);
    }
    this.earlyInput = [];
    this.syncSize();
  }

  /** The exec ended (or could not start, or its connection went): the terminal only shows what was. */
  get ended(): boolean {
    return this.exited;
  }

  /** The exec could not start: says why and closes on the next key. */
  fail(message: string): void {
    this.exited = true;
    this.enqueue({ kind: 'end', text: `\x1b[31m${message}\x1b[0m` });
  }

  // --- ExecSink -------------------------------------------------------------

  output(exec: string, data: Uint8Array, resync = false): void {
    this.execId ??= exec;
    if (resync) {
      this.enqueue({ kind: 'reset' });
    }
    this.enqueue({ kind: 'output', data });
  }

  exit(params: ExitParams): void {
    this.exited = true;
    const why = params.error ? `: ${params.error}` : '';
    const again = this.options.afterExit ? `; ${this.options.afterExit}` : '';
    const text =
      params.code === -1
        ? `\x1b[2m[process ended${why}; press any key to close${again}]\x1b[0m`
        : `\x1b[2m[process exited with code ${params.code}; press any key to close${again}]\x1b[0m`;
    this.enqueue({ kind: 'end', text });
  }

  // --- Pseudoterminal -------------------------------------------------------

  open(initialDimensions: Dimensions | undefined): void {
    this.isOpen = true;
    this.markOpened(initialDimensions);
    if (initialDimensions) {
      this.setDimensions(initialDimensions);
    }
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) {
      this.deliver(p);
    }
  }

  /**
   * The terminal closed: end its exec (never the bottle), unless the
   * caller decides that (keepOnClose).
   */
  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    if (!this.options.keepOnClose) {
      this.kill();
    }
  }

  /** Gives the terminal a new name. */
  rename(name: string): void {
    this.nameEmitter.fire(name);
  }

  /** Ends the exec, now or once its id is known. */
  kill(): void {
    this.killWanted = true;
    if (this.execId !== undefined && !this.exited) {
      this.channel.kill(this.execId);
    }
  }

  handleInput(data: string): void {
    if (this.endShown) {
      if (!terminalReport.test(data)) {
        this.closeEmitter.fire();
      }
      return;
    }
    if (this.exited) {
      return;
    }
    const bytes = encoder.encode(data);
    if (this.execId === undefined) {
      this.earlyInput.push(bytes);
    } else {
      this.channel.input(this.execId, bytes);
    }
  }

  setDimensions(dimensions: Dimensions): void {
    this.dims = dimensions;
    this.options.onDimensions?.(dimensions);
    this.syncSize();
  }

  // --- internals ------------------------------------------------------------

  private enqueue(p: Pending): void {
    if (this.isOpen) {
      this.deliver(p);
    } else {
      this.pending.push(p);
    }
  }

  private deliver(p: Pending): void {
    if (p.kind === 'reset') {
      // The bytes before are not continued: a character they split is lost.
      this.decoder = new TextDecoder('utf-8');
      this.writeEmitter.fire(fullReset);
      return;
    }
    if (p.kind === 'output') {
      // stream: true keeps a character split across chunks for the next one.
      const text = this.decoder.decode(p.data, { stream: true });
      if (text) {
        this.writeEmitter.fire(text);
      }
      if (this.execId !== undefined) {
        this.channel.ack(this.execId, p.data.byteLength);
      }
      return;
    }
    const rest = this.decoder.decode();
    this.writeEmitter.fire(`${rest}${resetModes}\r\n${p.text}\r\n`);
    this.endShown = true;
  }

  /** Sends the size the editor shows when the exec has another one. */
  private syncSize(): void {
    const d = this.dims;
    if (this.execId === undefined || this.exited || !d || d.columns < 1 || d.rows < 1) {
      return;
    }
    if (this.sentDims && this.sentDims.columns === d.columns && this.sentDims.rows === d.rows) {
      return;
    }
    this.sentDims = d;
    this.channel.resize(this.execId, d.columns, d.rows);
  }
}
