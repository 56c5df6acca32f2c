// Adds an allowlist entry to a bottle.yaml as a person would: one inserted
// line or item, every other byte (comments, quoting, indentation, flow or
// block style) as it was. The yaml package's Document API finds where; the
// text is spliced rather than re-printed, which would re-space comments and
// flow collections. No vscode import.

import { readFile, writeFile } from 'node:fs/promises';
import { isMap, isNode, isScalar, isSeq, parse as parseValue, parseDocument, type Document, type Node, type YAMLMap, type YAMLSeq } from 'yaml';

/**
 * Returns text with entry added to bottles.BOTTLE.egress.allow. A bottle
 * that writes no egress.allow gets one holding fallback (the allowlist that
 * served it until now: its profile's) and entry, so that it keeps what it
 * had. An entry already there changes nothing.
 */
export function addAllowEntry(text: string, bottle: string, entry: string, fallback: readonly string[] = []): string {
  const doc = parse(text);
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const b = doc.getIn(['bottles', bottle], true);
  if (!isMap(b)) {
    throw new Error(`bottles.${bottle} is not a mapping in this file`);
  }
  const egress = b.get('egress', true);
  let out: string;
  if (egress === undefined) {
    const list = [...fallback.filter((e) => e !== entry), entry];
    out = insertKey(text, b, 'egress', `{allow: ${flowList(list)}}`, eol);
  } else if (!isMap(egress)) {
    throw new Error(`bottles.${bottle}.egress is not a mapping`);
  } else {
    const allow = egress.get('allow', true);
    if (allow === undefined) {
      const list = [...fallback.filter((e) => e !== entry), entry];
      out = insertKey(text, egress, 'allow', flowList(list), eol);
    } else if (!isSeq(allow)) {
      throw new Error(`bottles.${bottle}.egress.allow is not a list`);
    } else if (allow.items.some((i) => isScalar(i) && i.value === entry)) {
      return text;
    } else {
      out = appendItem(text, allow, entry, eol);
    }
  }
  // The splice is checked by reading it back: a layout this code did not
  // foresee fails here instead of writing a broken or different manifest.
  const check = parse(out).getIn(['bottles', bottle, 'egress', 'allow'], true);
  if (!isSeq(check) || !check.items.some((i) => isScalar(i) && i.value === entry)) {
    throw new Error(`could not add ${entry} to bottles.${bottle}.egress.allow in this file's layout`);
  }
  return out;
}

/** Adds entry to the allowlist of bottle in the manifest file. */
export async function allowInManifest(file: string, bottle: string, entry: string, fallback: readonly string[]): Promise<void> {
  const text = await readFile(file, 'utf8');
  const out = addAllowEntry(text, bottle, entry, fallback);
  if (out !== text) {
    await writeFile(file, out);
  }
}

function parse(text: string): Document.Parsed {
  const doc = parseDocument(text);
  const err = doc.errors[0];
  if (err) {
    throw new Error(`the file does not parse: ${err.message}`);
  }
  return doc;
}

/** Appends a list item in the list's own style. */
function appendItem(text: string, seq: YAMLSeq, entry: string, eol: string): string {
  const [start] = range(seq);
  const last: unknown = seq.items.at(-1);
  if (seq.flow && last === undefined) {
    return splice(text, start + 1, scalar(entry));
  }
  if (!isNode(last)) {
    throw new Error('a list whose last item is not a value');
  }
  if (seq.flow) {
    return splice(text, range(last)[1], `, ${scalar(entry)}`);
  }
  // After the last item's line (its comment stays with it), at the dashes' column.
  const line = `${' '.repeat(column(text, start))}- ${scalar(entry)}`;
  const nl = text.indexOf('\n', range(last)[1]);
  return nl === -1 ? `${text}${eol}${line}` : splice(text, nl + 1, `${line}${eol}`);
}

/** Inserts `key: value` as the mapping's first pair, in its style. */
function insertKey(text: string, map: YAMLMap, key: string, value: string, eol: string): string {
  const [start] = range(map);
  const first = map.items[0]?.key;
  if (map.flow) {
    return splice(text, start + 1, first === undefined ? `${key}: ${value}` : `${key}: ${value}, `);
  }
  if (!isNode(first)) {
    throw new Error('a block mapping without keys');
  }
  const at = range(first)[0];
  return splice(text, at, `${key}: ${value}${eol}${' '.repeat(column(text, at))}`);
}

function range(n: Node): [number, number] {
  if (!n.range) {
    throw new Error('a node without a place in the file');
  }
  return [n.range[0], n.range[1]];
}

function column(text: string, offset: number): number {
  return offset - (text.lastIndexOf('\n', offset - 1) + 1);
}

function splice(text: string, at: number, insert: string): string {
  return text.slice(0, at) + insert + text.slice(at);
}

/** An entry as a YAML scalar: plain when that reads back the same anywhere, else double-quoted. */
function scalar(entry: string): string {
  return /^[a-z0-9][a-z0-9.:_-]*$/i.test(entry) && parseValue(entry) === entry ? entry : JSON.stringify(entry);
}

function flowList(entries: readonly string[]): string {
  return `[${entries.map(scalar).join(', ')}]`;
}
