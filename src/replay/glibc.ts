// Which glibc version a model follows: the one asked for; else MALLOCSCOPE_GLIBC; else this machine's, as
// Node reports it. A machine version the model does not know falls back, with a warning, to the newest known
// version below it. No node: import, so that the report page (a browser) can build models too.
import { GLIBC_2_36, GLIBC_VERSIONS, glibcRules, type GlibcRules } from '../allocator/versions.ts';
import { UsageError } from '../errors.ts';

/** The environment variable that names the version for every model made without one (`--glibc` wins). */
export const GLIBC_ENV = 'MALLOCSCOPE_GLIBC';

/** A version's rules, and a warning when they are not what was asked for or found. */
export interface ChosenGlibc {
  rules: GlibcRules;
  warning: string | null;
}

/** The versions the model knows, as "2.34, 2.35, …". */
export function knownVersions(): string {
  return GLIBC_VERSIONS.map((v) => v.rules.version).join(', ');
}

/**
 * The rules of `version`, or a usage error (exit 2) that lists the known versions; `from` names where a
 * version that was not given on the command line came from (an environment variable).
 */
export function rulesFor(version: string, from?: string): GlibcRules {
  const rules = glibcRules(version.trim());
  if (rules) return rules;
  if (from) throw new UsageError(`${from}=${JSON.stringify(version)} is not a glibc version the model knows (${knownVersions()})`);
  throw new UsageError(`the model does not know glibc ${JSON.stringify(version)}; it knows ${knownVersions()} (mallocscope versions)`);
}

/** Orders "2.9" before "2.10". */
function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The rules for a glibc `found` on a machine: its own when known, else the newest known version below it
 * (the oldest known when there is none below), with a warning naming both.
 */
export function rulesForMachine(found: string, where: string): ChosenGlibc {
  const exact = glibcRules(found);
  if (exact) return { rules: exact, warning: null };
  const below = GLIBC_VERSIONS.filter((v) => compareVersions(v.rules.version, found) < 0);
  const rules = (below.length ? below[below.length - 1] : GLIBC_VERSIONS[0]).rules;
  return {
    rules,
    warning: `${where} (${found}) is not a version the model knows; modelling glibc ${rules.version} (pick one with --glibc: ${knownVersions()})`,
  };
}

/** What Node says of the C library it runs on: its glibc version, or undefined (another libc, a browser). */
export function machineGlibcVersion(): string | undefined {
  // Asked once: Node's report gathers the whole process's state to say it (about 10 ms a time).
  if (machineVersion === null) {
    const report = (globalThis as { process?: { report?: { getReport?: () => unknown } } }).process?.report?.getReport?.() as
      | { header?: { glibcVersionRuntime?: string } }
      | undefined;
    machineVersion = report?.header?.glibcVersionRuntime;
  }
  return machineVersion;
}
let machineVersion: string | undefined | null = null;

let machine: ChosenGlibc | undefined;

/**
 * This machine's glibc, as the model follows it (asked once): its version when known, else the newest known
 * below it; 2.36, the model's first version, on a machine without glibc (a browser, musl), with a warning.
 */
export function machineGlibc(): ChosenGlibc {
  if (!machine) {
    const found = machineGlibcVersion();
    machine = found
      ? rulesForMachine(found, "this machine's glibc")
      : { rules: GLIBC_2_36, warning: 'this machine runs no glibc that Node can name; modelling glibc 2.36 (pick one with --glibc)' };
  }
  return machine;
}

/** The version of a model made without one: MALLOCSCOPE_GLIBC, else this machine's. */
export function defaultGlibc(): ChosenGlibc {
  const named = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[GLIBC_ENV];
  if (named) return { rules: rulesFor(named, GLIBC_ENV), warning: null };
  return machineGlibc();
}

/** The version for `asked` (a version, rules, or nothing for the default). */
export function chooseGlibc(asked?: string | GlibcRules): ChosenGlibc {
  if (asked === undefined) return defaultGlibc();
  return { rules: typeof asked === 'string' ? rulesFor(asked) : asked, warning: null };
}
