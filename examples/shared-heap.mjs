// The emulated heap in shared memory (README, "On real memory"): this process writes into a block, and a
// child process maps the heap read-only at an address of its own and reads the block at its offset.
import { execFileSync } from 'node:child_process';
import { Allocator, NativeSystem } from 'mallocscope';

const system = new NativeSystem({ backing: 'shared' });
const heap = new Allocator({ system });
const p = heap.malloc(100);
new TextEncoder().encodeInto('hello from the parent', heap.bytes(p));
const { path, base, length } = system.sharedHeap();
const offset = p - base;
console.log(`parent ${process.pid}: heap at 0x${base.toString(16)}, ${length} bytes, block at offset 0x${offset.toString(16)}, shared as ${path}`);
const child = `import { openHeapImage } from 'mallocscope';
const image = openHeapImage('${path}', { length: ${length} });
const text = new TextDecoder().decode(image.bytes.subarray(${offset}, ${offset} + 21));
console.log('child ' + process.pid + ': mapped read-only, offset 0x${offset.toString(16)} reads ' + JSON.stringify(text));
image.close();`;
process.stdout.write(execFileSync(process.execPath, ['--input-type=module', '-e', child]));
system.release();
