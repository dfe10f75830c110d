// The mallocscope command line: wires the commands together, turns usage mistakes into exit status 2 with one
// line that points to the command's own help, and hands every command's exit status back to its caller.
import { Command, type CommanderError } from 'commander';
import { ExitRequest, exitWith, helpPointer, reportError } from './run.ts';
import { readFileSync } from 'node:fs';
import { packageRoot } from '../native.ts';

type Register = (program: Command) => void;

/**
 * Each command module, by the commands it registers, in the order the overview lists them. A run loads only
 * the module of the command it names (a third of the start-up of the whole set); anything else (help, an
 * option first, a mistake) loads them all.
 */
const COMMANDS: { names: readonly string[]; load: () => Promise<Register> }[] = [
  { names: ['version', 'versions'], load: async () => (await import('./version-command.ts')).registerVersion },
  { names: ['import', 'import-mtrace'], load: async () => (await import('./import-command.ts')).registerImport },
  { names: ['record', 'import-recording'], load: async () => (await import('./record-command.ts')).registerRecord },
  { names: ['oracle'], load: async () => (await import('./oracle-command.ts')).registerOracle },
  { names: ['replay'], load: async () => (await import('./replay-command.ts')).registerReplay },
  { names: ['check'], load: async () => (await import('./check-command.ts')).registerCheck },
  { names: ['explain'], load: async () => (await import('./explain-command.ts')).registerExplain },
  { names: ['compare'], load: async () => (await import('./compare-command.ts')).registerCompare },
  { names: ['diff'], load: async () => (await import('./diff-command.ts')).registerDiff },
  { names: ['report'], load: async () => (await import('./report-command.ts')).registerReport },
  { names: ['anatomy'], load: async () => (await import('./anatomy-command.ts')).registerAnatomy },
  { names: ['tune'], load: async () => (await import('./tune-command.ts')).registerTune },
  { names: ['export'], load: async () => (await import('./export-command.ts')).registerExport },
  { names: ['image'], load: async () => (await import('./image-command.ts')).registerImage },
];

/** The register functions a run of `args` needs: the one module of the command named first, else all. */
async function registersFor(args: readonly string[]): Promise<Register[]> {
  const named = COMMANDS.find((c) => c.names.includes(args[0]));
  return Promise.all((named ? [named] : COMMANDS).map((c) => c.load()));
}

let version: string | undefined;

/** A commander error, with the subcommand whose parsing raised it. */
class CommandLineError extends Error {
  constructor(
    readonly error: CommanderError,
    readonly commandName: string | undefined,
  ) {
    super(error.message);
  }
}

/**
 * The command line with the commands of `registers`; made afresh for each run (commander keeps parsed values
 * on it). -V, --version is the program's own, whichever commands are there.
 */
function buildProgram(registers: readonly Register[]): Command {
  version ??= (JSON.parse(readFileSync(`${packageRoot}package.json`, 'utf8')) as { version: string }).version;
  const program = new Command('mallocscope')
    .description('See how glibc malloc really decides: replay allocation traces through the real glibc and a model of it')
    .version(version, '-V, --version')
    .exitOverride((error) => {
      throw new CommandLineError(error, undefined);
    })
    .configureOutput({ outputError: () => {} });

  for (const register of registers) register(program);

  // Each command's own errors name it, so that the message can point to its help.
  for (const command of program.commands) {
    command.exitOverride((error) => {
      throw new CommandLineError(error, command.name());
    });
  }
  return program;
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

/**
 * Runs the command line `args` (without node and the script) and resolves to its exit status; what the
 * command prints goes to process.stdout, process.stderr and standardOutput. bin/mallocscope.js exits with
 * the status; the tests run it in-process (test/support/cli.ts).
 */
export async function main(args: readonly string[]): Promise<number> {
  // A command that ends without an error but with a status of its own (check's 3, the oracle's) sets
  // process.exitCode: it is handed back, and the process's own is left as it was.
  const exitCodeBefore = process.exitCode;
  process.exitCode = undefined;
  try {
    await run(args);
    return Number(process.exitCode ?? 0);
  } catch (thrown) {
    if (thrown instanceof ExitRequest) return thrown.status;
    throw thrown;
  } finally {
    process.exitCode = exitCodeBefore;
  }
}

async function run(args: readonly string[]): Promise<void> {
  const program = buildProgram(await registersFor(args));
  try {
    // `mallocscope` alone is a request for the overview, as `mallocscope help` is.
    // So is `mallocscope help help` (commander would print it on stderr, as for a mistake).
    if (args.length === 0 || (args.length === 2 && args[0] === 'help' && args[1] === 'help')) {
      process.stdout.write(program.helpInformation());
      return;
    }
    // `mallocscope help NAME` of a command that does not exist is a mistake, not a request for the overview.
    const [first, second] = args;
    if (first === 'help' && second !== undefined && !program.commands.some((c) => c.name() === second || c.aliases().includes(second))) {
      exitWith(`unknown command '${second}' ${helpPointer()} [USAGE]`, 2);
    }
    await program.parseAsync([...args], { from: 'user' });
  } catch (thrown) {
    if (thrown instanceof CommandLineError) {
      const { error, commandName } = thrown;
      // Help and version were printed already; `help` exits 0, commander's own help-on-error is not used.
      if (error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') {
        throw new ExitRequest(error.exitCode);
      }
      exitWith(usageLine(error, commandName), 2);
    }
    reportError(thrown);
  }
}
