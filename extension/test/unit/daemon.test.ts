import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { daemonSocket } from '../../src/daemon';

describe('daemonSocket', () => {
  it('finds the socket where bottle-rpc puts it', () => {
    const cases: { name: string; env: NodeJS.ProcessEnv; want: string }[] = [
      { name: 'runtime dir', env: { XDG_RUNTIME_DIR: '/run/user/1000' }, want: '/run/user/1000/bottle/daemon.sock' },
      { name: 'no runtime dir', env: {}, want: '/tmp/bottle-1000/daemon.sock' },
      { name: 'relative runtime dir is ignored', env: { XDG_RUNTIME_DIR: 'run' }, want: '/tmp/bottle-1000/daemon.sock' },
    ];
    for (const c of cases) {
      assert.equal(daemonSocket(c.env, 1000), c.want, c.name);
    }
  });
});
