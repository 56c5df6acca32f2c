// Packages the bundled extension into bottle-VERSION.vsix. When the
// repository's bin/bottle-rpc exists it is bundled too (the extension's
// default server), and the .vsix is then for linux-x64 only.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const server = process.env.BOTTLE_RPC ?? join(root, '..', 'bin', 'bottle-rpc');
const bundled = join(root, 'bin', 'bottle-rpc');

rmSync(join(root, 'bin'), { recursive: true, force: true });
const args = ['package', '--no-dependencies', '--skip-license', '--allow-missing-repository'];
if (existsSync(server)) {
  mkdirSync(join(root, 'bin'));
  copyFileSync(server, bundled);
  chmodSync(bundled, 0o755);
  args.push('--target', 'linux-x64');
} else {
  console.warn(`package: ${server} not found; the extension will use bottle.serverPath or bottle-rpc on PATH`);
}
const out = join(root, `bottle-${version}.vsix`);
args.push('--out', out);
execFileSync(join(root, 'node_modules', '.bin', 'vsce'), args, { cwd: root, stdio: 'inherit' });
console.log(`package: wrote ${out}`);
