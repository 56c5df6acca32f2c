import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { addAllowEntry } from '../../src/manifestedit';
import { extensionRoot } from '../helpers/engine';

const fixture = readFileSync(join(extensionRoot, 'test', 'fixtures', 'commented.bottle.yaml'), 'utf8');

/** The fixture with line inserted after the line that is exactly after. */
function withLine(after: string, line: string): string {
  const lines = fixture.split('\n');
  const i = lines.indexOf(after);
  assert.ok(i >= 0, `fixture has no line ${JSON.stringify(after)}`);
  lines.splice(i + 1, 0, line);
  return lines.join('\n');
}

function replaced(from: string, to: string): string {
  assert.ok(fixture.includes(from), `fixture has no ${JSON.stringify(from)}`);
  return fixture.replace(from, to);
}

describe('addAllowEntry', () => {
  const cases: { name: string; bottle: string; entry: string; fallback?: string[]; want: string }[] = [
    {
      name: 'a block list gets one line at its own indentation, after the last item and its comment',
      bottle: 'web',
      entry: 'github.com:443',
      want: withLine('            - "*.anthropic.com"', '            - github.com:443'),
    },
    {
      name: 'a flow list gets one item, its spacing and the line’s comment kept',
      bottle: 'flow',
      entry: 'upstream.test:8080',
      want: replaced('[ x.test ]', '[ x.test, upstream.test:8080 ]'),
    },
    {
      name: 'a bottle without egress.allow gets one with the allowlist that served it, so it keeps it',
      bottle: 'plain',
      entry: 'github.com:443',
      fallback: ['api.anthropic.com', '*.claude.ai'],
      want: replaced(
        '    image: bottle/base:bookworm\n',
        '    egress: {allow: [api.anthropic.com, "*.claude.ai", github.com:443]}\n    image: bottle/base:bookworm\n',
      ),
    },
    {
      name: 'an entry already on the list changes nothing',
      bottle: 'web',
      entry: 'api.anthropic.com',
      want: fixture,
    },
    {
      name: 'an entry that plain YAML would misread is quoted',
      bottle: 'flow',
      entry: 'true',
      want: replaced('[ x.test ]', '[ x.test, "true" ]'),
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = addAllowEntry(fixture, c.bottle, c.entry, c.fallback);
      assert.equal(got, c.want);
      const allow = (parse(got) as { bottles: Record<string, { egress: { allow: string[] } }> }).bottles[c.bottle]!.egress.allow;
      assert.ok(allow.includes(c.entry));
    });
  }

  it('adds egress.allow to a block egress that has none, and keeps CRLF line ends', () => {
    const text = 'bottles:\r\n  b:\r\n    egress:\r\n      block: [x.test]  # no\r\n';
    assert.equal(
      addAllowEntry(text, 'b', 'a.test:443', ['p.test']),
      'bottles:\r\n  b:\r\n    egress:\r\n      allow: [p.test, a.test:443]\r\n      block: [x.test]  # no\r\n',
    );
  });

  it('refuses a bottle the file does not define, and a file that does not parse', () => {
    assert.throws(() => addAllowEntry(fixture, 'nope', 'a.test:443'), /bottles\.nope is not a mapping/);
    assert.throws(() => addAllowEntry('bottles: [', 'b', 'a.test:443'), /does not parse/);
  });
});
