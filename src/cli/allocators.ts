// The columns of `compare --allocator` and the series of `report --allocator` (docs/allocators.md): each allocator's
// replay of the trace (src/oracle/allocators.ts), and for glibc the model of the same glibc beside it.
import { UsageError } from '../errors.ts';
import { allocatorLibrary, parseAllocatorName, runAllocator, type AllocatorName } from '../oracle/allocators.ts';
import type { AllocatorColumn } from '../report/allocators.ts';
import { compareTrace } from '../report/compare.ts';
import { glibcFor } from './options.ts';

/** The `--allocator` values, checked: known names, each once. */
export function parseAllocatorNames(texts: readonly string[]): AllocatorName[] {
  const names = texts.map(parseAllocatorName);
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice !== undefined) throw new UsageError(`--allocator ${twice} is given twice`);
  return names;
}

/**
 * Replays `trace` under each allocator, in the order given, after checking that every library is installed (so a
 * missing one is said before any run). glibc's column carries the model's footprint and resident estimate.
 */
export function allocatorColumns(trace: string, names: readonly AllocatorName[], options: { brkLimit?: number } = {}): AllocatorColumn[] {
  for (const name of names) allocatorLibrary(name);
  const columns: AllocatorColumn[] = [];
  for (const name of names) {
    const run = runAllocator(trace, name, { brkLimit: options.brkLimit });
    const column: AllocatorColumn = { label: name, ...run };
    if (name === 'glibc') {
      const glibc = glibcFor({});
      const [model] = compareTrace(trace, [{ label: 'glibc', policy: 'glibc', settings: [], glibc }], {
        resident: true,
        system: { brkLimit: options.brkLimit },
      });
      column.model = {
        glibc: glibc.version,
        peakFootprint: model.peakFootprint,
        endFootprint: model.endFootprint,
        peakResident: model.peakResident ?? 0,
        endResident: model.endResident ?? 0,
        syscalls: { ...model.syscalls },
      };
    }
    columns.push(column);
  }
  return columns;
}
