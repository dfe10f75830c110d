// The oracle's heap images (docs/image.md): the one oracle run (oracle.ts) with its image options, so that the
// real glibc's heap is written after the chosen events.
import { UsageError } from '../errors.ts';
import { type OracleImages, type OracleOptions, oracleLines } from './oracle.ts';

export interface OracleImageOptions extends OracleOptions, OracleImages {}

/**
 * Replays `trace` (a file) through the real glibc, writing its heap images into `options.dir`; returns the
 * oracle's JSON Lines. A failed run raises its error, as oracleLines does.
 */
export function oracleImages(trace: string, options: OracleImageOptions): string[] {
  if (trace === '-') throw new UsageError('heap images need a trace file, not standard input');
  const { at, dir, base, arena, ...rest } = options;
  return oracleLines(trace, { ...rest, images: { at, dir, base, arena } });
}
