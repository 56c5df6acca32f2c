import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Log, parseSlog, type LogSink } from '../../src/log';

class Sink implements LogSink {
  lines: string[] = [];
  debug(m: string): void {
    this.lines.push(`debug ${m}`);
  }
  info(m: string): void {
    this.lines.push(`info ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`warn ${m}`);
  }
  error(m: string): void {
    this.lines.push(`error ${m}`);
  }
}

describe('the log', () => {
  it('writes one line per event with its source and level, the server’s own time dropped', () => {
    const sink = new Sink();
    const log = new Log(sink);
    log.server('time=2026-01-02T03:04:05.678Z level=WARN msg="session ab12: teardown slow" took=3s');
    log.server('time=2026-01-02T03:04:05.678Z level=INFO msg=ready');
    log.server('');
    log.server('panic: not slog');
    log.message(1, 'bottle/start claude failed: boom');
    log.info('Copied /p/a.txt (12 bytes) to /w/a.txt in bottle sh · p (ab12)');
    log.egress('[egress ab12] deny CONNECT x.test:443 (default-deny)', true);
    assert.deepEqual(sink.lines, [
      'warn [server] session ab12: teardown slow took=3s',
      'info [server] ready',
      'info [server] panic: not slog',
      'error [daemon] bottle/start claude failed: boom',
      'info [extension] Copied /p/a.txt (12 bytes) to /w/a.txt in bottle sh · p (ab12)',
      'warn [egress] [egress ab12] deny CONNECT x.test:443 (default-deny)',
    ]);
  });

  it('keeps a server line on one line whatever it carries', () => {
    const { message } = parseSlog('time=t level=ERROR msg="a\\nb\\u001b[2K"');
    assert.equal(message, 'a\\u{a}b\\u{1b}[2K');
  });
});
