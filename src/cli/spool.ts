// Standard input copied to a temporary file, for the commands that read a trace more than once (anatomy's
// second pass and the pin's line, export's two passes): a pipe can be read only once.
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { standardInput } from '../trace/reader.ts';

/** Standard input (errors name it `name`) copied to a file in a fresh temporary folder, removed by remove(). */
export function spoolStdin(name: string, command: string): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `mallocscope-${command}-`));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const path = join(dir, 'stdin.trace');
  try {
    const out = openSync(path, 'w');
    try {
      const input = standardInput(name);
      const buf = new Uint8Array(1 << 16);
      for (let n = input.read(buf, 0, buf.length); n > 0; n = input.read(buf, 0, buf.length)) writeSync(out, buf, 0, n);
    } finally {
      closeSync(out);
    }
  } catch (error) {
    remove();
    throw error;
  }
  return { path, remove };
}
