// The words of trace format v1 as values, in their fixed order (the numeric codes index these lists). No
// Node API here: the report's page bundles it too.
import type { TraceOp } from './api.ts';
import { MALLOPT_PARAMS } from '../allocator/constants.ts';

/** The verbs; a verb's numeric code is its index. */
export const TRACE_OPS: readonly TraceOp[] = ['malloc', 'calloc', 'realloc', 'memalign', 'free', 'mallopt', 'trim', 'spawn', 'exit'];

/** The mallopt parameters a trace may set (glibc's, from the core); a parameter's numeric code is its index. */
export { MALLOPT_PARAMS };

/** Numeric codes of the verbs, as TraceReader.readRaw() reports them in `op` (indexes of TRACE_OPS). */
export const OP_MALLOC = 0;
export const OP_CALLOC = 1;
export const OP_REALLOC = 2;
export const OP_MEMALIGN = 3;
export const OP_FREE = 4;
export const OP_MALLOPT = 5;
export const OP_TRIM = 6;
/** The largest thread number a trace may use (a C int, as the oracle keeps it). */
export const MAX_THREAD = 2147483647;

/** The thread verbs (docs/trace-format.md, threads): spawn U, exit. */
export const OP_SPAWN = 7;
export const OP_EXIT = 8;
