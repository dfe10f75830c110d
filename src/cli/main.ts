// The mallocscope command line: wires the commands together and turns usage mistakes into exit status 2,
// with one line that points to the command's own help.
import { Command, CommanderError } from 'commander';
import { exitWith, helpPointer, reportError } from './run.ts';
import { registerVersion } from './version-command.ts';
import { registerMtrace } from './mtrace-commands.ts';
import { registerOracle } from './oracle-command.ts';
import { registerReplay } from './replay-command.ts';
import { registerCheck } from './check-command.ts';
import { registerExplain } from './explain-command.ts';
import { registerCompare } from './compare-command.ts';
import { registerReport } from './report-command.ts';

/** A commander error, with the subcommand whose parsing raised it. */
class CommandLineError extends Error {
  constructor(
    readonly error: CommanderError,
    readonly commandName: string | undefined,
  ) {
    super(error.message);
  }
}

const program = new Command('mallocscope')
  .description('See how glibc malloc really decides: replay allocation traces through the real glibc and a model of it')
  .exitOverride((error) => {
    throw new CommandLineError(error, undefined);
  })
  .configureOutput({ outputError: () => {} });

registerVersion(program);
registerMtrace(program);
registerOracle(program);
registerReplay(program);
registerCheck(program);
registerExplain(program);
registerCompare(program);
registerReport(program);

// Each command's own errors name it, so that the message can point to its help.
for (const command of program.commands) {
  command.exitOverride((error) => {
    throw new CommandLineError(error, command.name());
  });
}

/** The one line for a mistake on the command line (commander's words, without its "error: "). */
function usageLine(error: CommanderError, commandName: string | undefined): string {
  // Commander puts its "(Did you mean …?)" on a second line.
  let text = error.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
  if (commandName === 'record' && error.code === 'commander.unknownOption') {
    text += ': if it is an option of the program, put -- before the program (mallocscope record [options] -- PROGRAM [ARGS...])';
  }
  return `${text} ${helpPointer(commandName)} [USAGE]`;
}

try {
  // `mallocscope` alone is a request for the overview, as `mallocscope help` is.
  // So is `mallocscope help help` (commander would print it on stderr, as for a mistake).
  if (process.argv.length <= 2 || (process.argv.length === 4 && process.argv[2] === 'help' && process.argv[3] === 'help')) {
    process.stdout.write(program.helpInformation());
    process.exit(0);
  }
  // `mallocscope help NAME` of a command that does not exist is a mistake, not a request for the overview.
  const [first, second] = process.argv.slice(2);
  if (first === 'help' && second !== undefined && !program.commands.some((c) => c.name() === second || c.aliases().includes(second))) {
    exitWith(`unknown command '${second}' ${helpPointer()} [USAGE]`, 2);
  }
  await program.parseAsync(process.argv);
} catch (thrown) {
  if (thrown instanceof CommandLineError) {
    const { error, commandName } = thrown;
    // Help and version were printed already; `help` exits 0, commander's own help-on-error is not used.
    if (error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') {
      process.exit(error.exitCode);
    }
    exitWith(usageLine(error, commandName), 2);
  }
  reportError(thrown);
}
