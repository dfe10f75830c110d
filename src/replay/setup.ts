// Builds the model a replay or the Allocator drives: a policy preset (or its `--policy` name) and GLIBC_TUNABLES
// over a kernel (or the simulated one's options). Names are resolved here, outside the core, which takes objects.
import { Malloc } from '../allocator/malloc.ts';
import type { GlibcRules } from '../allocator/versions.ts';
import { chooseGlibc } from './glibc.ts';
import { paramsFor, policyByName, type Preset } from '../policy/index.ts';
import type { SystemMemory } from '../system/api.ts';
import { SimulatedSystem, type SimulatedSystemOptions } from '../system/simulated.ts';
import { hostCores } from '../system/cores.ts';

/** What a model is built from. */
export interface ModelOptions {
  /** The glibc version to follow ("2.39", or its rules); default MALLOCSCOPE_GLIBC, else this machine's. */
  glibc?: string | GlibcRules;
  /** glibc (default), fixed:BYTES, heap, mmap, or a preset object. */
  policy?: Preset | string;
  /** A system layer, or options for the simulated one (the default). */
  system?: SystemMemory | SimulatedSystemOptions;
  /** The CPU count glibc sees (8 arenas per CPU once more than arena_test exist); default this machine's. */
  cores?: number;
  /**
   * A GLIBC_TUNABLES string, read as that glibc reads it and applied at ptmalloc_init, before the preset
   * (src/allocator/tunables.ts); what the model cannot follow exactly is a TUNABLES_UNSUPPORTED error.
   */
  tunables?: string;
}

/** A fresh process's malloc as the options say (the one place the Replayer and the Allocator make theirs). */
export function createMalloc(options: ModelOptions = {}): Malloc {
  const preset = typeof options.policy === 'object' ? options.policy : policyByName(options.policy ?? 'glibc');
  const system = kernelFor(options);
  const rules = chooseGlibc(options.glibc).rules;
  return new Malloc(system, paramsFor(preset, rules, options.tunables), rules, options.cores ?? hostCores());
}

/** The kernel the options name: the system given, or a simulated one built from its options. */
export function kernelFor(options: ModelOptions): SystemMemory {
  return options.system && 'sbrk' in options.system ? options.system : new SimulatedSystem(options.system);
}

/** The preset's name, for reports: what `--policy` would write. */
export function presetName(options: ModelOptions): string {
  return typeof options.policy === 'object' ? options.policy.name : (options.policy ?? 'glibc');
}
