// The model's heap images against the real glibc's, byte for byte, over many seeded random traces and every
// glibc build here (docs/image.md): prints a table of images compared and differences per version.
//   node --import tsx scripts/image-sweep.ts [--traces 100] [--events 2000] [--every 100] [--shape NAME|threads|all] [--seed 1] [--real] [--tunables STRING] [--brk-limit BYTES]
// Builds: this machine's glibc, each folder of $MALLOCSCOPE_GLIBC_BUILDS, each folder of .glibc/. --real adds
// the real-program fixtures (test/fixtures/real) at every 1000th event.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { MallocscopeError } from '../src/errors.ts';
import { readImage } from '../src/image/files.ts';
import { imageDifference } from '../src/image/compare.ts';
import { libcLoader, libcVersion } from '../src/oracle/oracle.ts';
import { oracleImages } from '../src/oracle/images.ts';
import { glibcRules } from '../src/allocator/versions.ts';
import { machineGlibcVersion } from '../src/replay/glibc.ts';
import { modelImages, parseImageAt } from '../src/replay/images.ts';
import { SHAPES, THREAD_SHAPES, generateTrace } from '../src/trace/generate.ts';
import { TraceWriter, formatCall } from '../src/trace/writer.ts';

const { values } = parseArgs({
  options: {
    traces: { type: 'string', default: '100' },
    events: { type: 'string', default: '2000' },
    every: { type: 'string', default: '100' },
    shape: { type: 'string', default: 'all' },
    seed: { type: 'string', default: '1' },
    real: { type: 'boolean', default: false },
    tunables: { type: 'string' },
    'brk-limit': { type: 'string' },
  },
});

const builds: { version: string; libc: string }[] = [];
const add = (version: string | undefined, libc: string) => {
  if (version && glibcRules(version) && !builds.some((b) => b.version === version)) builds.push({ version, libc });
};
add(machineGlibcVersion(), '');
const folders = (parent: string | undefined) =>
  parent && existsSync(parent)
    ? readdirSync(parent, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(parent, e.name))
        .sort()
    : [];
for (const dir of [...folders(process.env.MALLOCSCOPE_GLIBC_BUILDS), ...folders('.glibc')]) {
  try {
    libcLoader(dir);
    add(libcVersion(dir), dir);
  } catch {
    // not a build
  }
}
builds.sort((a, b) => a.version.localeCompare(b.version, undefined, { numeric: true }));

const shapes =
  values.shape === 'all'
    ? [...SHAPES, ...THREAD_SHAPES]
    : values.shape === 'threads'
      ? THREAD_SHAPES
      : [...SHAPES, ...THREAD_SHAPES].filter((s) => s.name === values.shape);
if (shapes.length === 0) {
  console.error(`unknown shape '${values.shape}'`);
  process.exit(2);
}
const brkLimit = values['brk-limit'] === undefined ? undefined : Number(values['brk-limit']);
const dir = mkdtempSync(join(tmpdir(), 'mallocscope-image-sweep-'));
const traces: { name: string; path: string; at: string }[] = [];
const count = Number(values.traces);
for (let n = 0; n < count; n++) {
  const shape = shapes[n % shapes.length];
  const seed = Number(values.seed) + Math.floor(n / shapes.length);
  const path = join(dir, `${shape.name}-${seed}.trace`);
  const writer = new TraceWriter({ path });
  for (const call of generateTrace(shape, seed, Number(values.events))) writer.line(formatCall(call));
  writer.close();
  traces.push({ name: `${shape.name} seed ${seed}`, path, at: `every:${values.every},end` });
}
if (values.real)
  for (const file of readdirSync('test/fixtures/real')
    .filter((f) => f.endsWith('.trace'))
    .sort())
    traces.push({ name: file, path: join('test/fixtures/real', file), at: 'every:1000,end' });

const started = Date.now();
const rows: string[] = [];
const failures: string[] = [];
let run = 0;
for (const build of builds) {
  let images = 0;
  let differ = 0;
  let refused = 0;
  let compared = 0;
  for (const trace of traces) {
    const out = join(dir, `run-${run++}`);
    // The oracle stops at the first image of a heap that is not one piece (IMAGE_NOT_CONTIGUOUS): the model
    // must refuse at that same event, and agree on every image before it.
    let refusedAt = -1;
    try {
      oracleImages(trace.path, { at: trace.at, dir: out, libc: build.libc, tunables: values.tunables, brkLimit });
    } catch (error) {
      const message = (error as Error).message;
      const at = /heap image after event (\d+): /.exec(message);
      if (!at || (error as MallocscopeError).code !== 'IMAGE_NOT_CONTIGUOUS') {
        failures.push(`${build.version} ${trace.name}: oracle: ${message}`);
        rmSync(out, { recursive: true, force: true });
        continue;
      }
      refusedAt = Number(at[1]);
      refused++;
    }
    compared++;
    let first: string | null = null;
    try {
      modelImages(trace.path, parseImageAt(trace.at), { glibc: build.version, tunables: values.tunables, system: { brkLimit } }, (seq, image) => {
        images++;
        const file = join(out, `heap-${seq}.img`);
        const difference = existsSync(file) ? imageDifference(image, readImage(file)) : 'the oracle wrote no image';
        if (difference !== null) {
          differ++;
          first ??= `after event ${seq}: ${difference}`;
        }
      });
      if (refusedAt >= 0) first ??= `the oracle refuses the image after event ${refusedAt} (IMAGE_NOT_CONTIGUOUS), the model does not`;
    } catch (error) {
      const message = (error as Error).message;
      if (!(refusedAt >= 0 && message.startsWith(`heap image after event ${refusedAt}: `) && (error as MallocscopeError).code === 'IMAGE_NOT_CONTIGUOUS')) {
        first ??= `model: ${message}`;
        differ++;
      }
    }
    if (first) failures.push(`${build.version} ${trace.name}: ${first}\n  trace: ${trace.path}`);
    rmSync(out, { recursive: true, force: true });
  }
  rows.push(`| ${build.version} | ${compared} | ${images} | ${differ} | ${refused} |`);
  console.error(`glibc ${build.version} done: ${rows[rows.length - 1]} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}
for (const f of failures.slice(0, 20)) console.log(f);
if (failures.length > 20) console.log(`… and ${failures.length - 20} more`);
console.log(
  `\n${traces.length} traces (${values.traces} random of ${shapes.length} shapes, ${values.events} events, every:${values.every}${values.real ? '; the real fixtures every:1000' : ''}${values.tunables ? `; GLIBC_TUNABLES=${values.tunables}` : ''}${brkLimit !== undefined ? `; --brk-limit ${brkLimit}` : ''}), ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
);
console.log('| glibc | traces compared | images compared | images that differ | traces the heap stops being one piece (both refuse there) |');
console.log('|---|---|---|---|---|');
for (const row of rows) console.log(row);
if (failures.length === 0) rmSync(dir, { recursive: true, force: true });
process.exit(failures.length ? 1 : 0);
