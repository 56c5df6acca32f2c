// What a bottle and its terminals are called where a person picks among
// them: the agent and the host folder it works on ("claude · myrepo"), and
// a short id only when two live bottles would still read the same. No
// vscode import.

import * as path from 'node:path';
import type { ExecInfo } from './protocol';

/** What a name is made of: the session, its agent, and the host folder copied in when known. */
export interface Nameable {
  session: string;
  agent: string;
  folder?: string;
}

/** "claude · myrepo", or the agent alone when the folder is unknown. */
export function baseName(b: Nameable): string {
  const folder = b.folder ? path.basename(b.folder) || b.folder : '';
  return folder ? `${b.agent} · ${folder}` : b.agent;
}

/**
 * The name of each bottle among all: its base name, with "#" and the
 * shortest prefix of its id (4 digits at least) that tells it apart when
 * another bottle has the same base name.
 */
export function bottleNames(all: readonly Nameable[]): Map<string, string> {
  const out = new Map<string, string>();
  const byBase = new Map<string, Nameable[]>();
  for (const b of all) {
    const base = baseName(b);
    byBase.set(base, [...(byBase.get(base) ?? []), b]);
  }
  for (const [base, group] of byBase) {
    if (group.length === 1) {
      out.set(group[0]!.session, base);
      continue;
    }
    let n = 4;
    const maxLen = Math.max(...group.map((b) => b.session.length));
    while (n < maxLen && new Set(group.map((b) => b.session.slice(0, n))).size < group.length) {
      n++;
    }
    for (const b of group) {
      out.set(b.session, `${base} #${b.session.slice(0, n)}`);
    }
  }
  return out;
}

/**
 * A terminal's name: the bottle's for its agent, ": shell" for Open
 * Terminal's shell, ": LINE" for Run Command's command line.
 */
export function terminalTitle(bottle: string, argv: readonly string[] | undefined): string {
  const [program, flag, line] = argv ?? [];
  if (program === 'bash' && flag === '-l' && argv?.length === 2) {
    return `${bottle}: shell`;
  }
  if (program === 'sh' && flag === '-c' && line !== undefined && argv?.length === 3) {
    return `${bottle}: ${line}`;
  }
  return bottle;
}

/** The title of a terminal for an exec that ran on without one (after a reload, an attach). */
export function execTitle(bottle: string, e: Pick<ExecInfo, 'argv'>): string {
  return terminalTitle(bottle, e.argv);
}

/** Whether an exec runs the agent (an exec without argv), not Open Terminal's shell or a Run Command line. */
export function isAgentExec(e: Pick<ExecInfo, 'argv'>): boolean {
  return terminalTitle('', e.argv) === '';
}
