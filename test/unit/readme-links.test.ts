import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * README, docs/security.md and the provider guides send a reader into the code and the tests. Every
 * path they link or name (in a link, in backquotes, in README's mermaid diagram) must exist inside
 * this repository, every `function()` they name must be in a file they name, and every test title
 * their tables cite must be a test's: so the reference cannot rot silently.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const DOCUMENTS = [
  'README.md',
  'docs/security.md',
  ...readdirSync(join(ROOT, 'docs/providers'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/providers/${name}`),
];

/** The repository's top-level folders: a backquoted or drawn word that starts with one is a path. */
const FOLDERS = ['src', 'test', 'views', 'public', 'docs', 'bench', '.ci', 'examples'];
const PATH = new RegExp(
  String.raw`(?<![\w./-])((?:\.\./)*(?:${FOLDERS.map((f) => f.replace('.', '\\.')).join('|')})/[\w./*@-]*)`,
  'g',
);
const FUNCTION = /(?<![\w.])([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\(\)/g;
const LINK = /\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;
const REFERENCE = /^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/;

type Kind = 'link' | 'backquoted' | 'diagram';

interface Scan {
  paths: Array<{ kind: Kind; target: string; line: number }>;
  functions: Array<{ name: string; line: number }>;
  /** Backquoted text of several words in a table's "test" column: a test's title. */
  testTitles: Array<{ title: string; line: number }>;
  /** The anchors of the document's headings, as GitHub makes them. */
  anchors: Set<string>;
}

function scan(text: string): Scan {
  const found: Scan = { paths: [], functions: [], testTitles: [], anchors: new Set() };
  const seen = new Map<string, number>();
  let fence: string | undefined;
  let testColumn: number | undefined;
  let inTable = false;
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    const opening = /^\s*(?:```|~~~)\s*([\w-]*)/.exec(raw);
    if (opening) {
      fence = fence === undefined ? opening[1] || 'text' : undefined;
      return;
    }
    if (fence !== undefined) {
      // Code is not prose: only the diagram's paths and functions count.
      if (fence !== 'mermaid') return;
      for (const [, target] of raw.matchAll(PATH))
        found.paths.push({ kind: 'diagram', target: target!, line });
      for (const [, name] of raw.matchAll(FUNCTION)) found.functions.push({ name: name!, line });
      return;
    }
    const heading = /^#{1,6}\s+(.+?)\s*#*$/.exec(raw);
    if (heading) {
      const base = slug(heading[1]!);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      found.anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const [, target] of raw.matchAll(LINK))
      found.paths.push({ kind: 'link', target: target!, line });
    const reference = REFERENCE.exec(raw);
    if (reference) found.paths.push({ kind: 'link', target: reference[1]!, line });
    for (const [, span] of raw.matchAll(/`([^`]+)`/g)) {
      for (const [, target] of span!.matchAll(PATH))
        found.paths.push({ kind: 'backquoted', target: target!, line });
      const call = /^([A-Za-z_$][\w$.]*)\(\)$/.exec(span!);
      if (call) found.functions.push({ name: call[1]!, line });
    }
    // Tables: the header names the columns; backquoted titles in a "test" column are tests.
    const isRow = raw.trimStart().startsWith('|');
    if (isRow && !inTable) {
      const header = cells(raw).map((c) => c.trim().toLowerCase());
      const column = header.findIndex((c) => /^(the )?tests?\b/.test(c));
      testColumn = column >= 0 ? column : undefined;
    } else if (isRow && testColumn !== undefined) {
      const cell = cells(raw)[testColumn] ?? '';
      for (const [, span] of cell.matchAll(/`([^`]+)`/g)) {
        if ((span!.match(/ /g) ?? []).length >= 2) found.testTitles.push({ title: span!, line });
      }
    }
    inTable = isRow;
  });
  return found;
}

function cells(row: string): string[] {
  return row.trim().replace(/^\|/, '').replace(/\|$/, '').split('|');
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

type Located = { file: string; fragment: string | undefined } | { problem: string } | 'web';

/**
 * Where a path a document names leads. A link is relative to the document; a backquoted or drawn
 * path to the repository's root, unless it starts with `../`.
 */
function locate(document: string, { kind, target }: Scan['paths'][number]): Located {
  if (/^(https?|mailto):/i.test(target)) return 'web';
  if (/^[a-z][a-z\d+.-]*:/i.test(target)) return { problem: 'points outside the repository' };
  const hash = target.indexOf('#');
  const path = hash < 0 ? target : target.slice(0, hash);
  const fragment = hash < 0 ? undefined : target.slice(hash + 1);
  if (path === '') return { file: join(ROOT, document), fragment }; // an anchor of the document
  if (/^[/\\]/.test(path)) return { problem: 'an absolute path, outside the repository' };
  let decoded: string;
  try {
    decoded = decodeURI(path).replace(/\*.*$/, ''); // a glob names its folder
  } catch {
    return { problem: 'not a valid path' };
  }
  const from = kind === 'link' || path.startsWith('../') ? dirname(join(ROOT, document)) : ROOT;
  const file = resolve(from, decoded);
  const inside = relative(ROOT, file);
  if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    return { problem: 'outside the repository' };
  }
  return { file, fragment };
}

/** What is wrong with one path a document names, or undefined when the repository has it. */
function pathProblem(
  document: string,
  scanned: Scan,
  mention: Scan['paths'][number],
): string | undefined {
  const where = `${document}:${mention.line}: ${mention.target} (${mention.kind})`;
  if (mention.target.startsWith('#')) {
    return scanned.anchors.has(mention.target.slice(1))
      ? undefined
      : `${where}: no heading with this anchor in ${document}`;
  }
  const located = locate(document, mention);
  if (located === 'web') return undefined;
  if ('problem' in located) return `${where}: ${located.problem}`;
  const { file, fragment } = located;
  if (!existsSync(file)) return `${where}: no such file or folder in the repository`;
  if (fragment !== undefined && file.endsWith('.md')) {
    if (!scan(readFileSync(file, 'utf8')).anchors.has(fragment)) {
      return `${where}: no heading with this anchor in ${relative(ROOT, file)}`;
    }
  }
  return undefined;
}

function pathProblems(document: string, text: string): string[] {
  const scanned = scan(text);
  return scanned.paths.flatMap((mention) => pathProblem(document, scanned, mention) ?? []);
}

/** The repository's files that a document names, by link, in backquotes or in its diagram. */
function namedFiles(document: string, scanned: Scan): string[] {
  const files = scanned.paths.flatMap((mention) => {
    const located = locate(document, mention);
    if (located === 'web' || 'problem' in located) return [];
    return existsSync(located.file) && statSync(located.file).isFile() ? [located.file] : [];
  });
  return [...new Set(files)];
}

function functionProblems(document: string, text: string): string[] {
  const scanned = scan(text);
  const sources = namedFiles(document, scanned).map((file) => readFileSync(file, 'utf8'));
  return scanned.functions.flatMap(({ name, line }) => {
    const word = new RegExp(`(?<![\\w$])${name.replace(/[.$]/g, '\\$&')}(?![\\w$])`);
    return sources.some((source) => word.test(source))
      ? []
      : [`${document}:${line}: ${name}() is in no file that ${document} names`];
  });
}

let testSources: string[] | undefined;
function allTestSources(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return walk(path);
      // This file cites made-up titles in its own checks: it is not a test of the app.
      if (path === fileURLToPath(import.meta.url)) return [];
      return entry.name.endsWith('.test.ts') ? [readFileSync(path, 'utf8')] : [];
    });
  return (testSources ??= walk(join(ROOT, 'test')));
}

function testTitleProblems(document: string, text: string): string[] {
  return scan(text).testTitles.flatMap(({ title, line }) => {
    // "…" stands for the rest of a long title.
    const parts = title
      .split('…')
      .map((part) => part.trim())
      .filter(Boolean);
    const found = allTestSources().some((source) => parts.every((part) => source.includes(part)));
    return found ? [] : [`${document}:${line}: no test is titled "${title}"`];
  });
}

const read = (document: string) => readFileSync(join(ROOT, document), 'utf8');

describe('the checks themselves', () => {
  it.each([
    ['a missing file', '[x](src/no-such-file.ts)', 'no such file'],
    ['a missing file in backquotes', 'see `test/unit/no-such.test.ts`', 'no such file'],
    ['a missing file in the diagram', '```mermaid\nA->>B: go() src/nope.ts\n```', 'no such file'],
    ['a link out of the repository', '[x](../outside.md)', 'outside the repository'],
    ['an absolute path', '[x](/etc/passwd)', 'an absolute path'],
    ['a file: URL', '[x](file:///etc/passwd)', 'points outside the repository'],
    ['a missing anchor', '# Here\n[x](#not-here)', 'no heading with this anchor'],
    ['a missing anchor in another file', '[x](docs/security.md#not-here)', 'no heading'],
  ])('finds %s', (_name, text, problem) => {
    expect(pathProblems('README.md', text)).toEqual([expect.stringContaining(problem)]);
  });

  it.each([
    ['a web address', '[x](https://example.com/src/nope.ts)'],
    ['a build output', 'run `node dist/server.js`'],
    ['a link inside a code block', '```sh\n[x](src/nope.ts)\n```'],
    [
      'an anchor of this file',
      '## A heading, with `code` (and more)\n[x](#a-heading-with-code-and-more)',
    ],
  ])('lets %s pass', (_name, text) => {
    expect(pathProblems('README.md', text)).toEqual([]);
  });

  it('finds a function that is in no file the document names', () => {
    const text = '`login()` and `noSuchFunction()` in [src/auth/login.ts](src/auth/login.ts)';
    expect(functionProblems('README.md', text)).toEqual([
      'README.md:1: noSuchFunction() is in no file that README.md names',
    ]);
  });

  it('finds a cited test title that no test has', () => {
    const text = [
      '| defence | test |',
      '| --- | --- |',
      '| a | `uses a transaction once: a replayed…` and `no test has this title` |',
    ].join('\n');
    expect(testTitleProblems('README.md', text)).toEqual([
      'README.md:3: no test is titled "no test has this title"',
    ]);
  });
});

describe('README and the docs', () => {
  it.each(DOCUMENTS)('%s links and names only files inside the repository', (document) => {
    expect(pathProblems(document, read(document))).toEqual([]);
  });

  it.each(DOCUMENTS)('%s names only functions found in the files it names', (document) => {
    expect(functionProblems(document, read(document))).toEqual([]);
  });

  it.each(DOCUMENTS)('%s cites only tests that exist', (document) => {
    expect(testTitleProblems(document, read(document))).toEqual([]);
  });

  it("draws the flow through each of the files that do it in README's diagram", () => {
    const drawn = new Set(
      scan(read('README.md'))
        .paths.filter((p) => p.kind === 'diagram')
        .map((p) => p.target),
    );
    for (const file of [
      'src/auth/login.ts',
      'src/auth/transactions.ts',
      'src/auth/access-token.ts',
      'src/api/session-api.ts',
      'src/api/provider-api.ts',
      'src/session/end-session.ts',
      'src/tokens/revocation.ts',
      'src/auth/backchannel-logout.ts',
    ]) {
      expect(drawn.has(file), `${file} in README's diagram`).toBe(true);
    }
  });

  it('defines in docs/security.md every requirement ID that README cites', () => {
    const defined = new Set(
      [...read('docs/security.md').matchAll(/^\|\s*([A-Z]\d+)\s*\|/gm)].map((m) => m[1]),
    );
    const cited = [...read('README.md').matchAll(/\[([A-Z]\d+(?:[–,]\s*[A-Z]\d+)*)\]/g)].flatMap(
      ([, list]) =>
        list!.split(/,\s*/).flatMap((item) => {
          const [from, to] = item.split('–');
          if (!to) return [from!];
          const letter = from![0]!;
          const [a, b] = [Number(from!.slice(1)), Number(to.slice(1))];
          return Array.from({ length: b - a + 1 }, (_, i) => `${letter}${a + i}`);
        }),
    );
    expect(cited.length).toBeGreaterThan(40);
    expect(cited.filter((id) => !defined.has(id))).toEqual([]);
  });
});
