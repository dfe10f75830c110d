// `mallocscope image TRACE [--at SEQ|end] [--base ADDR] -o heap.img`: the model's image of main_arena's heap after
// one event, as glibc lays it out in memory (docs/image.md), with its sidecar; --json prints what the walker
// reads from those bytes alone, chunk by chunk.
import type { Command } from 'commander';
import { Option } from 'commander';
import type { ModelHeapImage } from '../allocator/image.ts';
import { UsageError } from '../errors.ts';
import { writeImage } from '../image/files.ts';
import { DEFAULT_ARENA, DEFAULT_BASE } from '../image/format.ts';
import { type ImageLink, type LinkTarget, walkImage } from '../image/walk.ts';
import { parseNumber, parseSafeNumber } from '../number.ts';
import { modelImages } from '../replay/images.ts';
import { traceDisplayName } from '../trace/reader.ts';
import {
  brkLimitOption,
  checkTunables,
  coresOption,
  glibcFor,
  glibcOption,
  jsonOption,
  modelTunablesOption,
  parseBrkLimit,
  parseCores,
  policyOption,
} from './options.ts';
import { action } from './run.ts';
import { spoolStdin } from './spool.ts';

interface ImageCommandOptions {
  at: string;
  base: string;
  arena: string;
  output?: string;
  json?: boolean;
  policy: string;
  glibc?: string;
  tunables?: string;
  brkLimit?: string;
  cores?: string;
}

/** --base and --arena: a non-zero multiple of `unit`, below 2^64. */
function parseAddress(name: string, text: string, unit: bigint): bigint {
  const parsed = parseNumber(text);
  const value = parsed === undefined ? undefined : BigInt(parsed);
  if (value === undefined || value === 0n || value % unit !== 0n || value >= 1n << 64n) {
    throw new UsageError(`${name} takes a non-zero multiple of ${unit} below 2^64 (decimal or 0x-hexadecimal), not '${text}'`);
  }
  return value;
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

function targetJson(t: LinkTarget): Record<string, unknown> {
  return t.kind === 'chunk' ? { kind: 'chunk', offset: t.offset } : t.kind === 'bin' ? { kind: 'bin', bin: t.bin } : { kind: t.kind };
}

function linkJson(l: ImageLink): Record<string, unknown> {
  return { field: l.field, at: l.at, stored: hex(l.stored), mangled: l.mangled, pointer: hex(l.pointer), target: targetJson(l.target) };
}

/** The walk of an image as --json prints it: what a reader of the bytes and the sidecar sees. */
export function imageJson(image: ModelHeapImage): Record<string, unknown> {
  const walk = walkImage(image.bytes, image.sidecar);
  return {
    base: hex(image.sidecar.base),
    glibc: image.sidecar.glibc,
    seq: image.sidecar.seq,
    chunks: walk.chunks.map((c) => ({
      offset: c.offset,
      size: c.size,
      flags: c.flags,
      prevSize: c.prevSize,
      state: c.state,
      bin: c.bin,
      ...(c.tcacheStruct ? { tcacheStruct: true } : {}),
      ...(c.key !== undefined ? { key: hex(c.key) } : {}),
      links: c.links.map(linkJson),
    })),
    ...(walk.problems.length > 0 ? { problems: walk.problems } : {}),
  };
}

export function registerImage(program: Command): void {
  program
    .command('image')
    .description("the model's image of the main arena's heap after an event, byte for byte as glibc lays it out (docs/image.md)")
    .argument('<trace>', 'trace file, or - for standard input')
    .addOption(new Option('--at <event>', "end, or an event's seq (0-based, as in replay --jsonl): the image after it").default('end'))
    .addOption(new Option('--base <address>', 'the address the heap starts at in the image, a multiple of 4096').default(hex(DEFAULT_BASE)))
    .addOption(new Option('--arena <address>', "main_arena's notional address, a multiple of 16").default(hex(DEFAULT_ARENA)))
    .addOption(new Option('-o, --output <file>', 'write the image to this file, and its sidecar to FILE.json'))
    .addOption(jsonOption('every chunk, decoded by the walker from the image alone,'))
    .addOption(policyOption())
    .addOption(glibcOption())
    .addOption(modelTunablesOption())
    .addOption(brkLimitOption())
    .addOption(coresOption())
    .action(
      action((trace: string, options: ImageCommandOptions) => {
        let seq: number | 'end' = 'end';
        if (options.at !== 'end') {
          const value = parseSafeNumber(options.at);
          if (value === undefined) throw new UsageError(`--at takes end or an event's seq (0-based, as in replay --jsonl), not '${options.at}'`);
          seq = value;
        }
        const base = parseAddress('--base', options.base, 4096n);
        const arena = parseAddress('--arena', options.arena, 16n);
        if (options.output === undefined && !options.json) throw new UsageError('image needs -o FILE (the image and FILE.json), or --json');
        if (options.output === '-') throw new UsageError('-o takes a file: an image is written with its sidecar beside it (FILE.json)');
        const brkLimit = parseBrkLimit(options.brkLimit);
        const glibc = glibcFor(options);
        checkTunables(options.tunables, glibc);
        const name = traceDisplayName(trace);
        const spool = trace === '-' ? spoolStdin(name, 'image') : null;
        const taken: ModelHeapImage[] = [];
        let events: number;
        try {
          events = modelImages(
            spool?.path ?? trace,
            { seqs: new Set(seq === 'end' ? [] : [seq]), every: 0, end: seq === 'end' },
            {
              name,
              base,
              arena,
              policy: options.policy,
              glibc,
              tunables: options.tunables,
              system: { brkLimit },
              cores: parseCores(options.cores),
            },
            (_seq, image) => taken.push(image),
          );
        } finally {
          spool?.remove();
        }
        const image = taken[0];
        if (image === undefined) {
          throw new UsageError(
            events === 0
              ? `${name} has no events: there is nothing to take an image after`
              : `--at ${seq}: ${name} has ${events} events (seq 0 to ${events - 1})`,
          );
        }
        if (options.output !== undefined) writeImage(options.output, image);
        if (options.json) {
          // One chunk a line: a heap has many.
          const { chunks, ...head } = imageJson(image);
          const lines = (chunks as unknown[]).map((chunk) => JSON.stringify(chunk)).join(',\n');
          process.stdout.write(`${JSON.stringify(head).slice(0, -1)},"chunks":[\n${lines}\n]}\n`);
        }
      }),
    );
}
