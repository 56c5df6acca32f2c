// Where the per-user bottle daemon listens, as Go's daemon.DefaultSocket
// says: $XDG_RUNTIME_DIR/bottle/daemon.sock (an absolute one), else
// /tmp/bottle-$EUID/daemon.sock. No vscode import.

import * as path from 'node:path';

export function daemonSocket(env: NodeJS.ProcessEnv, euid: number = process.geteuid?.() ?? 0): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && path.isAbsolute(runtime)) {
    return path.join(runtime, 'bottle', 'daemon.sock');
  }
  return path.join('/tmp', `bottle-${euid}`, 'daemon.sock');
}
