// Output that arrives before anything shows it. bottle/attach's replay
// comes right after its answer, before the editor has made a terminal for
// the exec: the client keeps it here, by exec id, until a terminal claims
// it or the exec is released. No vscode import.

import type { ExitParams } from './protocol';

export type Held =
  | { kind: 'output'; data: Uint8Array; resync: boolean }
  | { kind: 'exit'; params: ExitParams };

export class OutputHold {
  /** Attaches in flight: until they answer, any exec may be one of theirs. */
  private inFlight = 0;
  /** Execs an attach answered with, waiting for claim or release. */
  private readonly expected = new Set<string>();
  private readonly held = new Map<string, Held[]>();

  /** An attach is sent: output of execs no sink knows is kept from now on. */
  begin(): void {
    this.inFlight++;
  }

  /**
   * The attach answered (or failed) with these execs; they stay held until
   * claim or release. Returns what was kept for other execs once no attach
   * is in flight any more: nobody shows those, so the caller acknowledges
   * their bytes (an unread window would hold their process back).
   */
  end(execs: Iterable<string>): Map<string, Held[]> {
    for (const e of execs) {
      this.expected.add(e);
    }
    this.inFlight = Math.max(0, this.inFlight - 1);
    const dropped = new Map<string, Held[]>();
    if (this.inFlight > 0) {
      return dropped;
    }
    for (const [exec, items] of this.held) {
      if (!this.expected.has(exec)) {
        dropped.set(exec, items);
        this.held.delete(exec);
      }
    }
    return dropped;
  }

  /** Keeps item when its exec is awaited; false: nobody will show it. */
  keep(exec: string, item: Held): boolean {
    if (this.inFlight === 0 && !this.expected.has(exec)) {
      return false;
    }
    let items = this.held.get(exec);
    if (!items) {
      items = [];
      this.held.set(exec, items);
    }
    items.push(item);
    return true;
  }

  /** Hands over what was kept for exec, in arrival order, and stops keeping it. */
  take(exec: string): Held[] {
    const items = this.held.get(exec) ?? [];
    this.held.delete(exec);
    this.expected.delete(exec);
    return items;
  }

  /** Forgets everything: the connection ended. */
  clear(): void {
    this.inFlight = 0;
    this.expected.clear();
    this.held.clear();
  }
}

/** The output bytes among items, which whoever drops them must acknowledge. */
export function heldBytes(items: readonly Held[]): number {
  let n = 0;
  for (const i of items) {
    if (i.kind === 'output') {
      n += i.data.byteLength;
    }
  }
  return n;
}
