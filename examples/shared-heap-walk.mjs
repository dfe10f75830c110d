// The shared heap as a real glibc heap (README, "On real memory"): with { metadata: true } the parent's heap
// holds glibc's metadata words at their real addresses, and a child process maps it read-only and walks its
// chunks and free lists from the bytes and the published sidecar alone, between the parent's calls.
import { execFileSync } from 'node:child_process';
import { Allocator, NativeSystem, formatSidecar } from 'mallocscope';

const system = new NativeSystem({ backing: 'shared' });
const heap = new Allocator({ system, metadata: true });
const child = `import { openHeapImage, parseSidecar, walkImage } from 'mallocscope';
let text = '';
for await (const chunk of process.stdin) text += chunk;
const { path, length, sidecar } = JSON.parse(text);
const image = openHeapImage(path, { length });
const walk = walkImage(image.bytes, parseSidecar(sidecar, 'parent'), 'the shared heap', { programBytes: true });
const shown = walk.chunks.map((c) => '0x' + c.offset.toString(16) + ' ' + c.size + ' ' + c.state + (c.bin === null ? '' : ' ' + c.bin));
console.log('child ' + process.pid + ': ' + shown.join(', ') + (walk.problems.length ? '; problems: ' + walk.problems.join('; ') : ''));
image.close();`;
const walkInChild = (what) => {
  const { path, length } = system.sharedHeap();
  console.log(`parent: ${what}`);
  const input = JSON.stringify({ path, length, sidecar: formatSidecar(heap.imageSidecar()) });
  process.stdout.write(execFileSync(process.execPath, ['--input-type=module', '-e', child], { input }));
};
const a = heap.malloc(24);
const b = heap.malloc(24);
const big = heap.malloc(2000);
heap.malloc(24);
walkInChild('malloc 24, 24, 2000, 24');
heap.free(a);
heap.free(b);
heap.free(big);
walkInChild('free the two 24s and the 2000');
heap.malloc(1000);
walkInChild('malloc 1000');
system.release();
