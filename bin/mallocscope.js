#!/usr/bin/env node
// The mallocscope command. The TypeScript sources are compiled to dist/ by `npm install` (the prepare script).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('mallocscope: not built yet; run `npm install` in the mallocscope folder [NOT_BUILT]\n');
  process.exit(2);
}
const { main } = await import(entry.href);
// At once, as a command line should: nothing the command started (a child, a timer) holds the process.
process.exit(await main(process.argv.slice(2)));
