// The Bottle output channel's lines: one per event, each with its source
// (the server's stderr, the daemon's messages, the proxy's decisions, the
// extension itself) and its level; the channel (a LogOutputChannel) stamps
// the time. No vscode import: the sink has the channel's shape.

import { printable } from './egress';

/** The part of a vscode.LogOutputChannel the log writes to. */
export interface LogSink {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export type Level = 'debug' | 'info' | 'warn' | 'error';

/** Where a line comes from. */
export type Source = 'server' | 'daemon' | 'egress' | 'extension';

export class Log {
  constructor(private readonly sink: LogSink) {}

  /** An event of the extension: a command done, a copy, an exit. */
  info(message: string): void {
    this.write('info', 'extension', message);
  }

  warn(message: string): void {
    this.write('warn', 'extension', message);
  }

  error(message: string): void {
    this.write('error', 'extension', message);
  }

  /** One line of the server's stderr (log/slog's text format), at its own level, without its own time. */
  server(line: string): void {
    if (!line.trim()) {
      return;
    }
    const { level, message } = parseSlog(line);
    this.write(level, 'server', message);
  }

  /** window/logMessage (1 error, 2 warning, 3 info, 4 log). */
  message(type: number, text: string): void {
    const level: Level = type === 1 ? 'error' : type === 2 ? 'warn' : type === 3 ? 'info' : 'debug';
    this.write(level, 'daemon', printable(text));
  }

  /** An egress decision or policy change, already escaped (egressLogLine). */
  egress(line: string, refused: boolean): void {
    this.write(refused ? 'warn' : 'info', 'egress', line);
  }

  private write(level: Level, source: Source, message: string): void {
    this.sink[level](`[${source}] ${message}`);
  }
}

const slogLine = /^time=\S+ level=(DEBUG|INFO|WARN|ERROR)(?:[+-]\d+)? (.*)$/;

/**
 * Splits a log/slog text line into its level and the rest, msg unquoted:
 * `time=T level=WARN msg="a b" k=v` is warn, `a b k=v`. Anything else is
 * an info line as it is.
 */
export function parseSlog(line: string): { level: Level; message: string } {
  const m = slogLine.exec(line);
  if (!m) {
    return { level: 'info', message: printable(line) };
  }
  const level = ({ DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const)[m[1] as 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'];
  let rest = m[2] ?? '';
  const quoted = /^msg=("(?:[^"\\]|\\.)*")(.*)$/.exec(rest);
  const bare = /^msg=(\S*)(.*)$/.exec(rest);
  if (quoted) {
    let msg: string;
    try {
      msg = JSON.parse(quoted[1]!) as string;
    } catch {
      msg = quoted[1]!;
    }
    rest = `${msg}${quoted[2] ?? ''}`;
  } else if (bare) {
    rest = `${bare[1] ?? ''}${bare[2] ?? ''}`;
  }
  return { level, message: printable(rest) };
}
