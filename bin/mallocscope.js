#!/usr/bin/env node
// The mallocscope command. The TypeScript sources are compiled to dist/ by `npm install` (the prepare script).
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('mallocscope: not built yet; run `npm install` in the mallocscope folder [NOT_BUILT]\n');
  process.exit(2);
}
await import(main.href);
