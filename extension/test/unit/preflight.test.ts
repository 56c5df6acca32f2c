import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describePlan, shortPath } from '../../src/preflight';
import type { PlanResult } from '../../src/protocol';

function plan(over: Partial<PlanResult> = {}): PlanResult {
  return {
    agent: 'claude',
    bottle: 'claude',
    runtime: 'runsc',
    runtimeLabel: 'runsc (gVisor)',
    image: 'bottle/claude:abc',
    networks: ['internal', 'egress'],
    allow: ['api.anthropic.com'],
    command: ['claude'],
    copyIn: [{ what: 'workspace', from: '/home/u/src/a-rather-long-project-name', to: '/home/node/workspace' }],
    warm: false,
    engine: 'local',
    ...over,
  };
}

describe('the preflight', () => {
  it('puts each host path and its path in the bottle on lines of their own, the home folder as ~', () => {
    const text = describePlan(plan(), { from: '/home/u/src/a-rather-long-project-name/.git', copied: true }, '/home/u');
    const lines = text.split('\n');
    const at = lines.indexOf('  workspace:');
    assert.deepEqual(lines.slice(at, at + 3), ['  workspace:', '    ~/src/a-rather-long-project-name', '    → /home/node/workspace']);
    const git = lines.indexOf('  git:');
    assert.deepEqual(lines.slice(git, git + 3), ['  git:', '    ~/src/a-rather-long-project-name/.git', '    → /home/node/workspace/.git']);
    assert.doesNotMatch(text, /Engine:|Warm start/, 'a local engine and a cold start say nothing');
  });

  it('names an engine that is not local, and a warm start', () => {
    const text = describePlan(plan({ engine: 'tcp://build:2376', warm: true }));
    assert.match(text, /^Engine: tcp:\/\/build:2376$/m);
    assert.match(text, /^Warm start: /m);
  });

  it('says why .git is not copied when the setting is off', () => {
    assert.match(describePlan(plan(), { from: '/p/.git', copied: false }), /bottle\.copyGit is off/);
  });

  it('shortens only paths under the home folder', () => {
    assert.equal(shortPath('/home/u', '/home/u'), '~');
    assert.equal(shortPath('/home/user2/x', '/home/u'), '/home/user2/x');
    assert.equal(shortPath('/x', '/'), '/x');
  });
});
