// Usage: node screen.mjs COLS ROWS < bytes
// Feeds stdin to @xterm/headless and prints the screen, one line per row.
import xterm from "@xterm/headless";

const [cols, rows] = process.argv.slice(2).map(Number);
const term = new xterm.Terminal({ cols, rows, allowProposedApi: true });
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
term.write(Buffer.concat(chunks), () => {
  const buf = term.buffer.active;
  const lines = [];
  for (let y = 0; y < rows; y++) {
    lines.push(buf.getLine(buf.viewportY + y)?.translateToString(true) ?? "");
  }
  process.stdout.write(lines.join("\n") + "\n");
});
