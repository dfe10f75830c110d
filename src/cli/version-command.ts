// `mallocscope version`: this tool's version, the glibc versions it models and the one on this machine;
// `mallocscope versions`: the glibc versions the model knows, with the distributions that ship them.
import type { Command } from 'commander';
import { GLIBC_VERSIONS } from '../allocator/versions.ts';
import { loadAddon } from '../native.ts';
import { knownVersions } from '../replay/glibc.ts';
import { glibcFor, jsonOption } from './options.ts';
import { action } from './run.ts';

/**
 * The version a model follows here by default, or undefined when the environment names none the model
 * knows (that is said on stderr: these commands are where one looks when it does).
 */
function defaultHere(): string | undefined {
  try {
    return glibcFor({}).version;
  } catch (error) {
    process.stderr.write(`mallocscope: warning: ${(error as Error).message}\n`);
    return undefined;
  }
}

/** The version and versions commands (main.ts gives the program its -V, --version). */
export function registerVersion(program: Command): void {
  // The program's own -V, --version: package.json is read once, by main.ts.
  const version = program.version();
  program
    .command('version')
    .description('print the mallocscope version, the glibc versions it models and the glibc of this machine')
    .action(
      action(() => {
        const machine = loadAddon().glibcVersion();
        const model = defaultHere();
        const note = model === undefined || machine === model ? '' : ` (the model follows ${model} by default)`;
        process.stdout.write(`mallocscope ${version}\nmodels glibc ${knownVersions()}\nthis machine: glibc ${machine}${note}\n`);
      }),
    );
  program
    .command('versions')
    .description('list the glibc versions the model knows, with the distributions that ship them')
    .addOption(jsonOption('the list'))
    .action(
      action((options: { json?: boolean }) => {
        const chosen = defaultHere();
        const rows = GLIBC_VERSIONS.map((v) => ({ version: v.rules.version, shippedBy: v.shippedBy, default: v.rules.version === chosen }));
        if (options.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        const lines = rows.map((r) => `${r.default ? '*' : ' '} ${r.version.padEnd(5)}  ${r.shippedBy}`);
        const legend = chosen === undefined ? '' : '* the default here (--glibc VERSION picks another)\n';
        process.stdout.write(`${lines.join('\n')}\n${legend}`);
      }),
    );
}
