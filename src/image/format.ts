// The heap image format (docs/image.md): the fixed addresses and markers, and the JSON sidecar that says what
// a walker needs beyond the bytes (base, glibc, arena, top, the arena's list heads), read and written exactly.
import { MallocscopeError } from '../errors.ts';

/** Where the heap starts in an image unless told otherwise: the heap start of a program under gdb (no ASLR). */
export const DEFAULT_BASE = 0x555555559000n;
/** The notional address of glibc's main_arena: where Debian 12's glibc 2.36 has it under gdb. */
export const DEFAULT_ARENA = 0x7ffff7fa7c60n;
/** What a tcache entry's key holds in an image: the ASCII bytes "TCACHKEY" (glibc's is random). */
export const KEY_MARKER = 0x59454b4843414354n;
/** What a pointer to another arena's chunk (a threaded trace's tcache) holds in an image. */
export const FOREIGN_MARKER = 0xf0f0f0f0f0f0f0f0n;

/** main_arena's layout on x86-64 (glibc 2.34 to 2.42): bin i's header "chunk" is at arena + 96 + 16 (i - 1). */
export const ARENA_BIN_HEADERS = 96;
/** Bins 1 (unsorted) to 127, and the ten fastbins. */
export const BIN_COUNT = 127;
export const FASTBIN_COUNT = 10;

export const SIDECAR_FORMAT = 'mallocscope-heap-image';
export const SIDECAR_VERSION = 1;

/** The tcache_perthread_struct's layout: `used` counts the entries (up to 2.41), `free` the slots left (2.42 on). */
export type TcacheLayout = { chunk: number; bins: number; slots: 'used' } | { chunk: number; bins: number; slots: 'free'; fill: number };

/** An image: its bytes (from the heap start to the end of the top) and its sidecar. */
export interface ImageBytes {
  bytes: Uint8Array;
  sidecar: ImageSidecar;
}

/** A bin's header: its fd and bk, as chunk offsets (only bins that hold chunks are listed). */
export interface BinHead {
  bin: number;
  fd: number;
  bk: number;
}

/** The sidecar of an image. Offsets are from the heap start; addresses are those the image's pointers use. */
export interface ImageSidecar {
  glibc: string;
  /** The event after which the image was taken. */
  seq: number;
  /** The address of the heap's first byte, for the pointers in the image. */
  base: bigint;
  /** Bytes in the image: from the heap start to the end of the top chunk; 0 before the heap exists. */
  size: number;
  /** main_arena's notional address: the bin links of the image point into it. */
  arena: bigint;
  /** The tcache key's marker, and the foreign pointers' (docs/image.md). */
  key: bigint;
  foreign: bigint;
  /** The top chunk's offset; null before the heap exists. */
  top: number | null;
  /** main_arena.last_remainder as an offset (glibc leaves it stale: it need not start a chunk now); null for none. */
  lastRemainder: number | null;
  /** The main thread's tcache_perthread_struct, null before it is made. */
  tcache: TcacheLayout | null;
  /** main_arena.fastbinsY: each head chunk's offset, null for an empty fastbin. */
  fastbins: (number | null)[];
  bins: BinHead[];
}

function fail(name: string, what: string): never {
  throw new MallocscopeError('IMAGE_SIDECAR', `${name}: ${what}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function offset(name: string, key: string, v: unknown, nullable: true): number | null;
function offset(name: string, key: string, v: unknown, nullable: false): number;
function offset(name: string, key: string, v: unknown, nullable: boolean): number | null {
  if (v === null && nullable) return null;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    fail(name, `"${key}" must be ${nullable ? 'null or ' : ''}a whole number of bytes, not ${JSON.stringify(v)}`);
  return v;
}

function address(name: string, key: string, v: unknown): bigint {
  if (typeof v !== 'string' || !/^0x[0-9a-f]{1,16}$/.test(v)) fail(name, `"${key}" must be a 0x-hexadecimal address (lower case), not ${JSON.stringify(v)}`);
  return BigInt(v);
}

const KEYS = ['format', 'version', 'glibc', 'seq', 'base', 'size', 'arena', 'key', 'foreign', 'top', 'lastRemainder', 'tcache', 'fastbins', 'bins'];

/** Reads a sidecar's text; `name` (its file) starts every error. Every key is checked, and no other is allowed. */
export function parseSidecar(text: string, name: string): ImageSidecar {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    fail(name, `not JSON: ${(error as Error).message}`);
  }
  if (!isRecord(json)) fail(name, 'not a JSON object');
  for (const key of Object.keys(json)) if (!KEYS.includes(key)) fail(name, `unknown key "${key}"`);
  for (const key of KEYS) if (!(key in json)) fail(name, `no "${key}"`);
  if (json.format !== SIDECAR_FORMAT) fail(name, `"format" must be "${SIDECAR_FORMAT}", not ${JSON.stringify(json.format)}`);
  if (json.version !== SIDECAR_VERSION) fail(name, `"version" ${JSON.stringify(json.version)} is not one this mallocscope reads (${SIDECAR_VERSION})`);
  if (typeof json.glibc !== 'string' || !/^\d+\.\d+(\.\d+)?$/.test(json.glibc))
    fail(name, `"glibc" must be a version such as "2.36", not ${JSON.stringify(json.glibc)}`);
  const size = offset(name, 'size', json.size, false);
  const top = offset(name, 'top', json.top, true);
  if ((top === null) !== (size === 0)) fail(name, size === 0 ? 'an empty image has a "top"' : 'an image with bytes needs a "top"');
  if (top !== null && top >= size) fail(name, `"top" ${top} is not inside the image (${size} bytes)`);
  let tcache: TcacheLayout | null = null;
  if (json.tcache !== null) {
    const t = json.tcache;
    if (!isRecord(t)) fail(name, '"tcache" must be null or an object');
    const chunk = offset(name, 'tcache.chunk', t.chunk, false);
    const bins = offset(name, 'tcache.bins', t.bins, false);
    if (bins === 0 || bins > 128) fail(name, `"tcache.bins" must be 1 to 128, not ${bins}`);
    if (t.slots === 'used' && Object.keys(t).length === 3) tcache = { chunk, bins, slots: 'used' };
    else if (t.slots === 'free' && Object.keys(t).length === 4) {
      const fill = offset(name, 'tcache.fill', t.fill, false);
      if (fill > 0xffff) fail(name, `"tcache.fill" must be at most 65535, not ${fill}`);
      tcache = { chunk, bins, slots: 'free', fill };
    } else fail(name, '"tcache" must be {"chunk","bins","slots":"used"} or {"chunk","bins","slots":"free","fill"}');
  }
  if (!Array.isArray(json.fastbins) || json.fastbins.length !== FASTBIN_COUNT) fail(name, `"fastbins" must be an array of ${FASTBIN_COUNT}`);
  const fastbins = json.fastbins.map((v, i) => offset(name, `fastbins[${i}]`, v, true));
  if (!Array.isArray(json.bins)) fail(name, '"bins" must be an array');
  let last = 0;
  const bins = json.bins.map((b, i): BinHead => {
    if (!isRecord(b) || Object.keys(b).join() !== 'bin,fd,bk') fail(name, `"bins[${i}]" must be {"bin","fd","bk"}`);
    const bin = offset(name, `bins[${i}].bin`, b.bin, false);
    if (bin <= last || bin > BIN_COUNT) fail(name, `"bins[${i}].bin" must be 1 to ${BIN_COUNT}, ascending, not ${bin}`);
    last = bin;
    return { bin, fd: offset(name, `bins[${i}].fd`, b.fd, false), bk: offset(name, `bins[${i}].bk`, b.bk, false) };
  });
  return {
    glibc: json.glibc,
    seq: offset(name, 'seq', json.seq, false),
    base: address(name, 'base', json.base),
    size,
    arena: address(name, 'arena', json.arena),
    key: address(name, 'key', json.key),
    foreign: address(name, 'foreign', json.foreign),
    top,
    lastRemainder: offset(name, 'lastRemainder', json.lastRemainder, true),
    tcache,
    fastbins,
    bins,
  };
}

const hex = (v: bigint) => `"0x${v.toString(16)}"`;

/** The sidecar's text: one line, keys in a fixed order, as the oracle writes it (byte for byte). */
export function formatSidecar(s: ImageSidecar): string {
  const tcache =
    s.tcache === null
      ? 'null'
      : `{"chunk":${s.tcache.chunk},"bins":${s.tcache.bins},"slots":"${s.tcache.slots}"${s.tcache.slots === 'free' ? `,"fill":${s.tcache.fill}` : ''}}`;
  const bins = s.bins.map((b) => `{"bin":${b.bin},"fd":${b.fd},"bk":${b.bk}}`).join(',');
  return (
    `{"format":"${SIDECAR_FORMAT}","version":${SIDECAR_VERSION},"glibc":${JSON.stringify(s.glibc)},"seq":${s.seq},` +
    `"base":${hex(s.base)},"size":${s.size},"arena":${hex(s.arena)},"key":${hex(s.key)},"foreign":${hex(s.foreign)},` +
    `"top":${s.top},"lastRemainder":${s.lastRemainder},"tcache":${tcache},` +
    `"fastbins":[${s.fastbins.map(String).join(',')}],"bins":[${bins}]}\n`
  );
}
