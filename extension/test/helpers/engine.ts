// The real server and engine the integration and end-to-end tests use, and
// the check that they leave nothing behind on the engine.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BottleClient, type CrashInfo } from '../../src/client';

/** The repository root (this file runs from extension/out/test/helpers). */
export const repoRoot = resolve(__dirname, '..', '..', '..', '..');
export const extensionRoot = resolve(__dirname, '..', '..', '..');
export const bottleRpc = process.env.BOTTLE_RPC ?? join(repoRoot, 'bin', 'bottle-rpc');

export function requireServer(): void {
  if (!existsSync(bottleRpc)) {
    throw new Error(`${bottleRpc} is missing: run scripts/setup.sh (or set BOTTLE_RPC)`);
  }
}

/** A manifest with one quick agent, a bash in the base image under runc. */
export function quickManifest(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bottle-ext-manifest-'));
  const file = join(dir, 'bottle.yaml');
  writeFileSync(
    file,
    [
      'agents:',
      '  sh: {bottle: b, command: [bash]}',
      'bottles:',
      '  b: {image: "bottle/base:bookworm", runtime: runc, egress: {allow: [x.test]}}',
      '',
    ].join('\n'),
  );
  return file;
}

/** The cache folder where scripts/setup.sh puts the Claude Code build context. */
export const bottleCache =
  process.env.BOTTLE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'bottle');

/**
 * The YAML of the default Claude Code agent with an allowlist that names no
 * real host: its attempt to reach its API is refused at the sidecar, so no
 * test sends traffic off this machine.
 */
export function claudeManifestYaml(): string {
  return [
    'agents:',
    '  claude: {bottle: claude, command: [claude], prompt: "You are in a test."}',
    'bottles:',
    '  claude:',
    `    build: {context: ${JSON.stringify(join(bottleCache, 'agents', 'claude'))}, args: {BASE: "bottle/base:bookworm"}}`,
    // No questions: these tests are about the agent's screen and refusals;
    // approvals have a test of their own, with an agent that waits for them.
    '    egress: {allow: [x.test], ask: false}',
    '    env: {DISABLE_AUTOUPDATER: "1"}',
    '',
  ].join('\n');
}

/** claudeManifestYaml written to a bottle.yaml of its own. */
export function claudeManifest(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bottle-ext-manifest-'));
  const file = join(dir, 'bottle.yaml');
  writeFileSync(file, claudeManifestYaml());
  return file;
}

export interface TestClient {
  client: BottleClient;
  crashes: CrashInfo[];
  /** Every owner pid the client's servers had, for the leftover check. */
  pids: Set<number>;
}

/**
 * A client of the real bottle-rpc: `serve` in process, or with remote set
 * `serve --remote=auto` in front of the daemon that env's XDG_RUNTIME_DIR
 * names.
 */
export function realClient(
  backoff?: ConstructorParameters<typeof BottleClient>[0]['backoff'],
  opts: { remote?: boolean; env?: NodeJS.ProcessEnv } = {},
): TestClient {
  requireServer();
  const crashes: CrashInfo[] = [];
  const pids = new Set<number>();
  const client = new BottleClient({
    server: () => ({ command: bottleRpc, args: opts.remote ? ['serve', '--remote=auto'] : ['serve'], env: opts.env ?? process.env }),
    remote: () => opts.remote === true,
    clientInfo: { name: 'bottle-extension-tests' },
    host: {
      log: (line) => {
        if (process.env.BOTTLE_TEST_VERBOSE) {
          console.error(`[bottle-rpc] ${line}`);
        }
      },
      serverCrashed: (c) => crashes.push(c),
    },
    backoff,
  });
  client.onDidChangeState((s) => {
    if (s === 'running' && client.serverPid) {
      pids.add(client.serverPid);
    }
  });
  return { client, crashes, pids };
}

function docker(args: string[]): string[] {
  return execFileSync('docker', args, { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/**
 * What the engine still holds of these sessions and server pids:
 * containers, networks and images, labelled by bottle-rpc.
 */
export function leftovers(sessions: Iterable<string>, pids: Iterable<number> = []): string[] {
  const filters = [
    ...[...sessions].map((s) => `label=dev.bottle.session=${s}`),
    ...[...pids].map((p) => `label=dev.bottle.owner.pid=${p}`),
  ];
  const found: string[] = [];
  for (const f of filters) {
    found.push(...docker(['ps', '-a', '--filter', f, '--format', 'container {{.Names}}']).map((l) => `${l} (${f})`));
    found.push(...docker(['network', 'ls', '--filter', f, '--format', 'network {{.Name}}']).map((l) => `${l} (${f})`));
    found.push(...docker(['images', '--filter', f, '--format', 'image {{.Repository}}:{{.Tag}}']).map((l) => `${l} (${f})`));
  }
  return [...new Set(found)];
}
