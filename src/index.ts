// The public API of mallocscope: the trace format today; the allocator model and its backends join it.
export type {
  TraceOp,
  MalloptParam,
  TraceCall,
  TraceEvent,
  EventPlace,
  MallocCall,
  CallocCall,
  ReallocCall,
  MemalignCall,
  FreeCall,
  MalloptCall,
  TrimCall,
} from './trace/api.ts';
export { readTrace, parseTrace, TraceReader, MAX_LINE_LENGTH, type ReadTraceOptions } from './trace/reader.ts';
export { formatCall, formatTrace, TraceWriter, type TraceSink } from './trace/writer.ts';
export { MallocscopeError, TraceError, UsageError } from './errors.ts';
