// Bundles the extension into dist/extension.js: the .vsix then carries no
// node_modules (vsce package --no-dependencies).
import * as esbuild from 'esbuild';

await esbuild.build({
  entryPoints: ['src/extension.ts'],
  bundle: true,
  outfile: 'dist/extension.js',
  external: ['vscode'],
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  sourcesContent: false,
  minify: process.argv.includes('--minify'),
  logLevel: 'warning',
});
