import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { baseName, bottleNames, execTitle, isAgentExec, terminalTitle } from '../../src/names';

describe('bottle names', () => {
  it('names a bottle by its agent and folder, the agent alone when the folder is unknown', () => {
    assert.equal(baseName({ session: 'a', agent: 'claude', folder: '/home/u/src/myrepo' }), 'claude · myrepo');
    assert.equal(baseName({ session: 'a', agent: 'claude' }), 'claude');
  });

  it('tells two bottles apart by agent and folder, with a short id only when those still collide', () => {
    const names = bottleNames([
      { session: 'aa11bb22', agent: 'claude', folder: '/src/one' },
      { session: 'cc33dd44', agent: 'claude', folder: '/src/two' },
      { session: 'ee55ff66', agent: 'sh', folder: '/src/one' },
      { session: 'abcd0001', agent: 'claude', folder: '/elsewhere/one' },
      { session: 'abcd0002', agent: 'claude', folder: '/src/one' },
    ]);
    assert.equal(names.get('cc33dd44'), 'claude · two');
    assert.equal(names.get('ee55ff66'), 'sh · one');
    // Three claude · one: the shortest prefix (4 digits at least) that differs.
    assert.equal(names.get('aa11bb22'), 'claude · one #aa11bb22');
    assert.equal(names.get('abcd0001'), 'claude · one #abcd0001');
    assert.equal(names.get('abcd0002'), 'claude · one #abcd0002');
    assert.equal(new Set(names.values()).size, 5, 'every name differs');
  });

  it('uses 4 digits of the id when they suffice', () => {
    const names = bottleNames([
      { session: '1234aaaa', agent: 'claude', folder: '/p' },
      { session: '5678bbbb', agent: 'claude', folder: '/q/p' },
    ]);
    assert.deepEqual([...names.values()], ['claude · p #1234', 'claude · p #5678']);
  });

  it('names terminals after the bottle: the agent, its shell, a command line', () => {
    assert.equal(terminalTitle('claude · myrepo', undefined), 'claude · myrepo');
    assert.equal(terminalTitle('claude · myrepo', ['bash', '-l']), 'claude · myrepo: shell');
    assert.equal(terminalTitle('claude · myrepo', ['sh', '-c', 'git status']), 'claude · myrepo: git status');
    assert.equal(execTitle('claude · myrepo', { argv: ['claude', '--append-system-prompt', 'x'] }), 'claude · myrepo');
    assert.equal(execTitle('sh · p', { argv: ['bash'] }), 'sh · p');
  });

  it('tells the agent’s exec from a shell and a command', () => {
    assert.equal(isAgentExec({ argv: ['claude', '--append-system-prompt', 'x'] }), true);
    assert.equal(isAgentExec({ argv: ['bash'] }), true);
    assert.equal(isAgentExec({ argv: ['bash', '-l'] }), false);
    assert.equal(isAgentExec({ argv: ['sh', '-c', 'ls'] }), false);
  });
});
