// Where the per-user bottle daemon listens, as Go's daemon.DefaultSocket
// says: $XDG_RUNTIME_DIR/bottle/daemon.sock, else /tmp/bottle-$UID/daemon.sock.
// No vscode import.

import * as path from 'node:path';

export function daemonSocket(env: NodeJS.ProcessEnv, uid: number = process.getuid?.() ?? 0): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime) {
    return path.join(runtime, 'bottle', 'daemon.sock');
  }
  return `/tmp/bottle-${uid}/daemon.sock`;
}
