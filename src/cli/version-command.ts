// `mallocscope version`: this tool's version, and the glibc it models against the one on this machine.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { loadAddon, packageRoot } from '../native.ts';
import { action } from './run.ts';

/** The glibc release the model reproduces. */
export const MODELLED_GLIBC = '2.36';

export function registerVersion(program: Command): void {
  const pkg = JSON.parse(readFileSync(`${packageRoot}package.json`, 'utf8')) as { version: string };
  program.version(pkg.version, '-V, --version');
  program
    .command('version')
    .description('print the mallocscope version, the glibc it models and the glibc of this machine')
    .action(
      action(() => {
        const machine = loadAddon().glibcVersion();
        const note = machine === MODELLED_GLIBC ? '' : ' (differs: oracle output may not match the model)';
        process.stdout.write(`mallocscope ${pkg.version}\nmodels glibc ${MODELLED_GLIBC}\nthis machine: glibc ${machine}${note}\n`);
      }),
    );
}
