// Turns whatever a request failed with into what the user is told and what
// they can do about it. No vscode import: the extension maps the actions to
// buttons.

import { ResponseError } from 'vscode-jsonrpc';
import { errorMessage, ServerStartError, ServerStoppedError } from './client';
import type { ErrorData, ManifestProblem } from './protocol';

export type ErrorAction =
  | { kind: 'showLog' }
  | { kind: 'openSetting'; setting: string }
  | { kind: 'openManifest'; file: string; line?: number }
  | { kind: 'cleanUp' };

export interface ErrorReport {
  message: string;
  actions: ErrorAction[];
}

const showLog: ErrorAction = { kind: 'showLog' };

/**
 * Describes err, raised while doing what (like "Start claude"). Undefined
 * means the user cancelled, which needs no message.
 */
export function describeError(what: string, err: unknown): ErrorReport | undefined {
  if (err instanceof ServerStartError) {
    const last = err.stderrTail.filter((l) => l.trim()).at(-1);
    return {
      message: `${what} failed: ${err.message}${last ? ` — ${last}` : ''}`,
      actions: [{ kind: 'openSetting', setting: 'bottle.serverPath' }, showLog],
    };
  }
  if (err instanceof ServerStoppedError) {
    return { message: `${what} failed: bottle-rpc stopped. It restarts by itself.`, actions: [showLog] };
  }
  if (!(err instanceof ResponseError)) {
    return { message: `${what} failed: ${errorMessage(err)}`, actions: [showLog] };
  }
  const data = errorData(err.data);
  const hint = data?.hint ? ` (${data.hint})` : '';
  switch (data?.kind) {
    case 'cancelled':
      return undefined;
    case 'manifestInvalid': {
      const problems = data.problems ?? [];
      const first = problems[0];
      const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
      return {
        message: first
          ? `${what} failed: the manifest is invalid: ${formatProblem(first)}${more}`
          : `${what} failed: ${err.message}`,
        actions: first ? [{ kind: 'openManifest', file: first.file, line: first.line }, showLog] : [showLog],
      };
    }
    case 'manifestUnreadable':
      return {
        message: `${what} failed: ${err.message}${hint}`,
        actions: [{ kind: 'openSetting', setting: 'bottle.manifest' }],
      };
    case 'unknownAgent':
      return {
        message: `${what} failed: ${err.message}. The manifest's agents: ${(data.agents ?? []).join(', ') || 'none'}.`,
        actions: [{ kind: 'openSetting', setting: 'bottle.manifest' }],
      };
    case 'engineUnavailable':
      return {
        message: `${what} failed: Docker is not reachable: ${err.message}${hint}`,
        actions: [{ kind: 'openSetting', setting: 'bottle.dockerHost' }, showLog],
      };
    case 'teardownFailed':
    case 'nameTaken':
      return { message: `${what} failed: ${err.message}${hint}`, actions: [{ kind: 'cleanUp' }, showLog] };
    default:
      return { message: `${what} failed: ${err.message}${hint}`, actions: [showLog] };
  }
}

function formatProblem(p: ManifestProblem): string {
  const where = p.line ? `${p.file}:${p.line}` : p.file;
  return `${where}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

function errorData(data: unknown): ErrorData | undefined {
  if (typeof data !== 'object' || data === null || typeof (data as { kind?: unknown }).kind !== 'string') {
    return undefined;
  }
  return data as ErrorData;
}
