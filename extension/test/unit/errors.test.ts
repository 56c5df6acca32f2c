import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResponseError } from 'vscode-jsonrpc';
import { ServerStartError, ServerStoppedError } from '../../src/client';
import { describeError } from '../../src/errors';
import type { ErrorData } from '../../src/protocol';

const wire = (code: number, message: string, data: ErrorData) => new ResponseError(code, message, data);

describe('describeError', () => {
  it('says nothing about a request the user cancelled', () => {
    assert.equal(describeError('Start claude', wire(-32800, 'request cancelled', { kind: 'cancelled', hint: '' })), undefined);
  });

  it('points a manifest problem at its file and line', () => {
    const r = describeError(
      'Start sh',
      wire(-32102, 'bottle.yaml: 2 problems', {
        kind: 'manifestInvalid',
        hint: 'fix the listed problems',
        problems: [
          { file: '/w/bottle.yaml', line: 4, field: 'bottles.b.image', message: 'image or build is required' },
          { file: '/w/bottle.yaml', line: 9, message: 'unknown key' },
        ],
      }),
    );
    assert.equal(
      r?.message,
      'Start sh failed: the manifest is invalid: /w/bottle.yaml:4: bottles.b.image: image or build is required (and 1 more)',
    );
    assert.deepEqual(r?.actions[0], { kind: 'openManifest', file: '/w/bottle.yaml', line: 4 });
  });

  it('offers the Docker host setting when the engine is unavailable, with the hint', () => {
    const r = describeError(
      'Start claude',
      wire(-32100, 'cannot connect', { kind: 'engineUnavailable', hint: 'start the Docker daemon' }),
    );
    assert.match(r!.message, /Docker is not reachable: cannot connect \(start the Docker daemon\)/);
    assert.deepEqual(r!.actions, [{ kind: 'openSetting', setting: 'bottle.dockerHost' }, { kind: 'showLog' }]);
  });

  it('offers Clean Up Orphans when a teardown failed', () => {
    const r = describeError('Close sh', wire(-32603, 'teardown: boom', { kind: 'teardownFailed', hint: 'run gc' }));
    assert.deepEqual(r!.actions[0], { kind: 'cleanUp' });
  });

  it('lists the manifest’s agents for an unknown agent', () => {
    const r = describeError('Start x', wire(-32602, 'no agent x', { kind: 'unknownAgent', hint: '', agents: ['a', 'b'] }));
    assert.match(r!.message, /agents: a, b\./);
  });

  it('offers the server path setting when bottle-rpc cannot start, quoting its stderr', () => {
    const r = describeError('Start claude', new ServerStartError('bottle-rpc exited during start-up', ['', 'serve: no engine', '']));
    assert.equal(r!.message, 'Start claude failed: bottle-rpc exited during start-up — serve: no engine');
    assert.deepEqual(r!.actions[0], { kind: 'openSetting', setting: 'bottle.serverPath' });
  });

  it('explains a request lost to a server crash', () => {
    assert.match(describeError('Copy a', new ServerStoppedError())!.message, /bottle-rpc stopped/);
  });

  it('falls back to the message and Show Log', () => {
    assert.deepEqual(describeError('Do it', new Error('oops')), {
      message: 'Do it failed: oops',
      actions: [{ kind: 'showLog' }],
    });
  });
});
