// The mallocscope command line: wires the commands together and turns usage mistakes into exit status 2.
import { Command, CommanderError } from 'commander';
import { exitWith, reportError } from './run.ts';
import { registerVersion } from './version-command.ts';
import { registerMtrace } from './mtrace-commands.ts';
import { registerOracle } from './oracle-command.ts';
import { registerReplay } from './replay-command.ts';
import { registerCheck } from './check-command.ts';
import { registerExplain } from './explain-command.ts';
import { registerCompare } from './compare-command.ts';
import { registerReport } from './report-command.ts';

const program = new Command('mallocscope')
  .description('See how glibc malloc really decides: replay allocation traces through the real glibc and a model of it')
  .exitOverride()
  .configureOutput({ outputError: () => {} });

registerVersion(program);
registerMtrace(program);
registerOracle(program);
registerReplay(program);
registerCheck(program);
registerExplain(program);
registerCompare(program);
registerReport(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    if (error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version') {
      process.exit(0);
    }
    exitWith(`${error.message.replace(/^error: /, '')} (run \`mallocscope --help\` for usage) [USAGE]`, 2);
  }
  reportError(error);
}
