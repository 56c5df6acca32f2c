import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { Approvals, Choice, type ApprovalHost } from '../../src/approvals';
import { allowInManifest } from '../../src/manifestedit';
import type { EgressApprovalParams } from '../../src/protocol';
import type { SessionOrigin } from '../../src/sessions';
import { extensionRoot } from '../helpers/engine';

const dir = mkdtempSync(join(tmpdir(), 'bottle-approvals-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const commentedManifest = join(extensionRoot, 'test', 'fixtures', 'commented.bottle.yaml');

const question: EgressApprovalParams = { session: 'cafe0001', method: 'CONNECT', host: 'github.com', port: 443 };

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A fake window that answers with answer (a button, or undefined: dismissed) when answered resolves. */
function fakeHost(opts: { answer?: string; origin?: SessionOrigin; answered?: Promise<void>; writeFails?: boolean } = {}) {
  const asked: { message: string; buttons: string[] }[] = [];
  const errors: string[] = [];
  const allowed: [string, string[]][] = [];
  const host: ApprovalHost = {
    ask: async (message, buttons) => {
      asked.push({ message, buttons });
      await opts.answered;
      return opts.answer;
    },
    agent: (s) => (s === 'cafe0001' ? 'reviewer' : undefined),
    origin: () => opts.origin,
    writeManifest: (file, bottle, entry, fallback) =>
      opts.writeFails ? Promise.reject(new Error('read-only')) : allowInManifest(file, bottle, entry, fallback),
    allow: (session, entries) => {
      allowed.push([session, entries]);
      return Promise.resolve({ allow: entries });
    },
    error: (m) => errors.push(m),
    log: () => undefined,
  };
  return { host, asked, errors, allowed };
}

/** A copy of the commented fixture as a workspace's bottle.yaml. */
function workspaceManifest(): SessionOrigin {
  const file = join(dir, `bottle-${++n}.yaml`);
  copyFileSync(commentedManifest, file);
  return { manifest: file, inWorkspace: true, bottle: 'web', allow: ['api.anthropic.com', '*.anthropic.com'] };
}

describe('Approvals', () => {
  it('asks “AGENT (bottle ID) wants to reach HOST:PORT” with the four answers for a workspace manifest', async () => {
    const { host, asked } = fakeHost({ origin: workspaceManifest(), answer: Choice.deny });
    await new Approvals(host).answer(question);
    assert.deepEqual(asked, [
      {
        message: 'reviewer (bottle cafe0001) wants to reach github.com:443',
        buttons: ['Allow Once', 'Allow for This Bottle', 'Always Allow', 'Deny'],
      },
    ]);
  });

  const decisions: { button: string | undefined; want: string }[] = [
    { button: Choice.once, want: 'allowOnce' },
    { button: Choice.session, want: 'allowSession' },
    { button: Choice.always, want: 'allowSession' },
    { button: Choice.deny, want: 'deny' },
    { button: undefined, want: 'deny' },
  ];
  for (const d of decisions) {
    it(`answers ${d.want} for ${d.button ?? 'a dismissed notification'}`, async () => {
      const origin = workspaceManifest();
      const { host } = fakeHost({ origin, answer: d.button });
      assert.deepEqual(await new Approvals(host).answer(question), { decision: d.want });
      const written = readFileSync(origin.manifest!, 'utf8') !== readFileSync(commentedManifest, 'utf8');
      assert.equal(written, d.button === Choice.always, 'only Always Allow writes the manifest');
    });
  }

  it('Always Allow writes host:port into the bottle’s egress.allow, keeping every comment and line', async () => {
    const origin = workspaceManifest();
    const { host, errors } = fakeHost({ origin, answer: Choice.always });
    await new Approvals(host).answer(question);
    const before = readFileSync(commentedManifest, 'utf8').split('\n');
    const afterEdit = readFileSync(origin.manifest!, 'utf8').split('\n');
    const i = before.indexOf('            - "*.anthropic.com"') + 1;
    assert.deepEqual(afterEdit, [...before.slice(0, i), '            - github.com:443', ...before.slice(i)]);
    assert.deepEqual(errors, []);
  });

  const notOffered: { name: string; origin: SessionOrigin | undefined }[] = [
    { name: 'the built-in manifest', origin: { inWorkspace: false, bottle: 'claude', allow: [] } },
    { name: 'a manifest outside the workspace', origin: { manifest: '/etc/bottle.yaml', inWorkspace: false, bottle: 'b', allow: [] } },
    { name: 'a session this window did not start', origin: undefined },
  ];
  for (const c of notOffered) {
    it(`does not offer Always Allow for ${c.name}`, async () => {
      const { host, asked } = fakeHost({ origin: c.origin, answer: Choice.session });
      assert.deepEqual(await new Approvals(host).answer(question), { decision: 'allowSession' });
      assert.deepEqual(asked[0]?.buttons, ['Allow Once', 'Allow for This Bottle', 'Deny']);
    });
  }

  it('escapes what the agent chose: a host cannot draw a fake line or reorder the text', async () => {
    const { host, asked } = fakeHost({ answer: Choice.deny });
    await new Approvals(host).answer({ ...question, host: 'evil.test\n\u202egithub.com' });
    assert.equal(asked[0]?.message, 'reviewer (bottle cafe0001) wants to reach evil.test\\u{a}\\u{202e}github.com:443');
  });

  it('still allows the bottle when the manifest cannot be written, and says so', async () => {
    const { host, errors } = fakeHost({ origin: workspaceManifest(), answer: Choice.always, writeFails: true });
    assert.deepEqual(await new Approvals(host).answer(question), { decision: 'allowSession' });
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /github\.com:443 is allowed for this bottle, but not written to .*: read-only/);
  });

  it('ends the question when the proxy decides the held connection itself, and a late Always Allow still allows and writes', async () => {
    let answer: () => void = () => undefined;
    const answered = new Promise<void>((r) => (answer = r));
    const origin = workspaceManifest();
    const { host, allowed } = fakeHost({ origin, answer: Choice.always, answered });
    const approvals = new Approvals(host);
    const decision = approvals.answer(question);
    await new Promise((r) => setTimeout(r, 10));
    approvals.egress({
      session: 'cafe0001',
      record: { time: '', event: 'decision', method: 'CONNECT', host: 'other.test', port: 443, decision: 'deny', rule: 'default-deny' },
    });
    approvals.egress({
      session: 'cafe0001',
      record: { time: '', event: 'ask', id: 1, method: 'CONNECT', host: 'github.com', port: 443, decision: 'ask', rule: 'default-deny' },
    });
    const pending = await Promise.race([decision, new Promise((r) => setTimeout(() => r('pending'), 20))]);
    assert.equal(pending, 'pending', 'records of other hosts and of the question itself do not end it');
    approvals.egress({
      session: 'cafe0001',
      record: { time: '', event: 'decision', method: 'CONNECT', host: 'github.com', port: 443, decision: 'deny', rule: 'default-deny', reason: 'no answer in time' },
    });
    assert.deepEqual(await decision, { decision: 'deny' });
    answer();
    await until(() => /- github\.com:443/.test(readFileSync(origin.manifest!, 'utf8')));
    assert.deepEqual(allowed, [['cafe0001', ['github.com:443']]]);
  });

  it('denies once the server stops waiting, and a late Allow for This Bottle adds the entry with bottle/allow', async () => {
    let answer: () => void = () => undefined;
    const answered = new Promise<void>((r) => (answer = r));
    const { host, allowed } = fakeHost({ answer: Choice.session, answered });
    const cts = new CancellationTokenSource();
    const decision = new Approvals(host).answer(question, cts.token);
    cts.cancel();
    assert.deepEqual(await decision, { decision: 'deny' });
    answer();
    await until(() => allowed.length > 0);
    assert.deepEqual(allowed, [['cafe0001', ['github.com:443']]]);
  });
});
