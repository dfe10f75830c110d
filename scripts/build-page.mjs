// Bundles the report's page (src/report/html/page.ts and the model it imports) into one browser script,
// dist/report/html/page.bundle.js, which `mallocscope report` inlines into every report. Run by the build
// (npm run build, npm install's prepare, npm test). The page runs in a browser: a Node module or global in
// its graph fails the build here, not in the reader's browser.
import { fileURLToPath } from 'node:url';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const entry = `${root}src/report/html/page.ts`;
const out = `${root}dist/report/html/page.bundle.js`;

const result = await build({
  entryPoints: [entry],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  write: false,
  legalComments: 'none',
  logLevel: 'silent',
  metafile: true,
  plugins: [
    {
      name: 'no-node-in-the-page',
      setup(b) {
        b.onResolve({ filter: /^node:/ }, (args) => ({
          errors: [{ text: `the report page may not import ${args.path} (imported by ${relative(root, args.importer)}): the page runs in a browser` }],
        }));
      },
    },
  ],
}).catch((error) => {
  console.error(`build-page: ${error.message}`);
  process.exit(1);
});

const text = result.outputFiles[0].text;
// Node's globals are not imports: look for them in the bundle (minified code keeps a free variable's name).
const globals = [...text.matchAll(/\b(Buffer|process|require|__dirname|__filename)\s*[.(]/g)].map((m) => m[1]);
if (globals.length) {
  console.error(`build-page: the page's bundle uses Node's ${[...new Set(globals)].join(', ')}: the page runs in a browser`);
  process.exit(1);
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, text);
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`build-page: ${relative(root, out)}, ${(text.length / 1024).toFixed(0)} KiB from ${inputs} modules`);
