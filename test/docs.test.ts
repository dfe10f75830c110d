// The manual against the repository: every test that docs/glibc.md names as a rule's proof still exists under
// that title, every repository path the manuals name exists, and every "docs/glibc.md §N" cited in a comment
// has its section. A renamed test or a moved file fails here instead of leaving the manual quietly wrong.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const glibcDoc = readFileSync(join(root, 'docs/glibc.md'), 'utf8');

/** The titles a test file registers, as patterns: `${...}` in a template title matches any text. */
function titlePatterns(file: string): RegExp[] {
  const source = readFileSync(join(root, file), 'utf8');
  const patterns: RegExp[] = [];
  for (const m of source.matchAll(/\b(?:test|[a-zA-Z]+Test)\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g)) {
    const title = m[2].replace(/\\(['"`\\])/g, '$1');
    const parts = title.split(/\$\{[^}]*\}/).map(escapeRegExp);
    patterns.push(new RegExp(`^${parts.join('.*')}$`, 's'));
  }
  return patterns;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Each “title” of docs/glibc.md with the test file named last before it; line breaks read as spaces. */
function citedTitles(): { file: string; title: string; line: number }[] {
  const cited: { file: string; title: string; line: number }[] = [];
  let file = '';
  for (const m of glibcDoc.matchAll(/`(test\/[\w./-]+\.test\.ts)`|“([^”]*)”/g)) {
    if (m[1] !== undefined) {
      file = m[1];
      continue;
    }
    const line = glibcDoc.slice(0, m.index).split('\n').length;
    assert.ok(file !== '', `docs/glibc.md:${line}: a title before any test file`);
    cited.push({ file, title: m[2].replace(/\s*\n\s*/g, ' '), line });
  }
  return cited;
}

test('every test title docs/glibc.md cites is a test of the file it names', () => {
  const cited = citedTitles();
  assert.ok(cited.length > 100, `only ${cited.length} titles found`);
  const patterns = new Map<string, RegExp[]>();
  const missing: string[] = [];
  for (const { file, title, line } of cited) {
    if (!patterns.has(file)) {
      assert.ok(existsSync(join(root, file)), `docs/glibc.md:${line}: ${file} does not exist`);
      patterns.set(file, titlePatterns(file));
    }
    if (!patterns.get(file)!.some((p) => p.test(title))) missing.push(`docs/glibc.md:${line}: ${file} has no test “${title}”`);
  }
  assert.equal(missing, []);
});

test('every repository path the manuals name exists', () => {
  const missing: string[] = [];
  for (const doc of ['docs/glibc.md', 'docs/design.md', 'docs/trace-format.md', 'docs/mtrace.md', 'docs/import.md', 'README.md']) {
    const text = readFileSync(join(root, doc), 'utf8');
    for (const m of text.matchAll(/`((?:test|examples|scripts|native|bench|docs)\/[\w./-]*\w)`/g)) {
      if (!existsSync(join(root, m[1]))) missing.push(`${doc}: ${m[1]}`);
    }
  }
  assert.equal(missing, []);
});

test('every "docs/glibc.md §N" cited in the repository is a section of docs/glibc.md', () => {
  const sections = new Set([...glibcDoc.matchAll(/^#{2,3} §(\d+(?:\.\d+)?) /gm)].map((m) => m[1]));
  for (const n of ['1', '2', '3', '4', '5', '6', '7', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '7.7', '7.8', '8', '9', '10', '11']) {
    assert.ok(sections.has(n), `docs/glibc.md has no §${n}`);
  }
  const bad: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(ts|mjs|c|cc|h|trace|md)$/.test(entry.name)) {
        const text = readFileSync(join(root, path), 'utf8');
        // "docs/glibc.md §7.3", "docs/glibc.md §2, §3" and "docs/glibc.md §2–§7" all cite sections.
        for (const m of text.matchAll(/docs\/glibc\.md((?:[ ,–-]+(?:and )?§\d+(?:\.\d+)?)+)/g)) {
          for (const s of m[1].matchAll(/§(\d+(?:\.\d+)?)/g)) if (!sections.has(s[1])) bad.push(`${path}: §${s[1]}`);
        }
      }
    }
  };
  for (const dir of ['src', 'test', 'native', 'examples', 'scripts', 'bench', 'docs']) walk(dir);
  assert.equal(bad, []);
});

test.run();
