// The preflight as the confirmation before a start shows it. The dialog
// wraps long lines where it likes: each copied item puts its host path and
// its path in the bottle on lines of their own, the home folder written ~.
// No vscode import.

import { homedir } from 'node:os';
import type { PlanResult } from './protocol';
import { gitPlanLine } from './work';

/** path with the home folder written ~. */
export function shortPath(p: string, home: string = homedir()): string {
  if (home && home !== '/' && (p === home || p.startsWith(`${home}/`))) {
    return `~${p.slice(home.length)}`;
  }
  return p;
}

function copyLines(what: string, from: string | undefined, to: string, home: string): string[] {
  return from ? [`  ${what}:`, `    ${shortPath(from, home)}`, `    → ${to}`] : [`  ${what}: ${to}`];
}

/**
 * The preflight's text. git: the workspace's .git and whether it is
 * copied in.
 */
export function describePlan(p: PlanResult, git?: { from: string; copied: boolean }, home: string = homedir()): string {
  const copied = p.copyIn.flatMap((c) => copyLines(c.what, c.from, c.to, home));
  const workspace = p.copyIn.find((c) => c.what === 'workspace')?.to;
  if (git?.copied) {
    copied.push(...copyLines('git', git.from, workspace ? `${workspace}/.git` : '.git in the workspace', home));
    copied.push('    (the history Review Changes and Fetch Changes compare with)');
  }
  return [
    `Runtime: ${p.runtimeLabel}`,
    ...(p.engine && p.engine !== 'local' ? [`Engine: ${p.engine}`] : []),
    ...(p.warm ? ['Warm start: a bottle made ahead of time is ready for it'] : []),
    `Image: ${p.image}`,
    `Command: ${p.command.join(' ')}`,
    `Egress allowed to: ${p.allow.length ? p.allow.join(', ') : 'nothing'}`,
    `Networks: ${p.networks.join('; ')}`,
    ...(copied.length ? ['Copied in:', ...copied] : []),
    ...(git && !git.copied ? [gitPlanLine(git.from, workspace, false)] : []),
  ].join('\n');
}
