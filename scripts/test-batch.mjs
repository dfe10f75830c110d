// Runs several compiled test files one after another in this one process, for scripts/run-tests.mjs: a Node
// start and the first compilation of the modules cost about 0.3 s of CPU per file, as much as a light file's
// tests. Each file's tests run and are summed up by uvu before the next file is imported, between two marker
// lines the runner splits the output at, so every file is still reported on its own.
//
//   node scripts/test-batch.mjs FILE.js...
import { fileURLToPath, pathToFileURL } from 'node:url';

export const START = '@@mallocscope-test-file-start';
export const END = '@@mallocscope-test-file-end';

async function runBatch(files) {
  // uvu's own multi-file mode: a file's test.run() queues its tests, and exec() runs the queue.
  globalThis.UVU_DEFER = 1;
  const { exec } = await import('uvu');
  for (const [index, file] of files.entries()) {
    const started = Date.now();
    globalThis.UVU_QUEUE = [[null]];
    globalThis.UVU_INDEX = 0;
    process.exitCode = 0;
    console.log(`${START} ${index}`);
    try {
      await import(pathToFileURL(file).href);
      await exec();
    } catch (error) {
      // A file that throws while loading has no summary: the runner counts it as failed and shows this.
      console.log(error?.stack ?? String(error));
      process.exitCode = 1;
    }
    console.log(`${END} ${index} ${process.exitCode ?? 0} ${(Date.now() - started) / 1000}`);
  }
  process.exitCode = 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runBatch(process.argv.slice(2));
