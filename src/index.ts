// The public API of mallocscope: the trace format, the model of glibc's allocator (2.34 to 2.42), its policy presets
// and kernels, the oracle (the real glibc of this machine) and heap images (docs/image.md).
export type {
  TraceOp,
  MalloptParam,
  TraceCall,
  SpawnCall,
  ExitCall,
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
export { SHAPES, THREAD_SHAPES, generateTrace, seededRandom, shapeByName, type GeneratedCall, type ThreadPlan, type TraceShape } from './trace/generate.ts';
export { EDGES, generateEdgeTrace } from './trace/edges.ts';
export { Allocator, type AllocatorOptions, type BlockInfo, type LastCall } from './replay/allocator.ts';
export { Replayer, type ReplayOptions, type ReplayOutcome } from './replay/replayer.ts';
export { replayTrace, type ReplayStep } from './replay/replay-trace.ts';
export type { Mallinfo2, MallocStats } from './allocator/libc.ts';
export type { ChunkInfo, ChunkKind, BinsView } from './allocator/walk.ts';
export type { CallNotes, AllocPath, ThresholdMove } from './allocator/notes.ts';
export { Malloc } from './allocator/malloc.ts';
export { MallocPar } from './allocator/params.ts';
export { policyByName, paramsFor, fixed, GLIBC, HEAP, MMAP, type Preset } from './policy/index.ts';
export { createMalloc, type ModelOptions } from './replay/setup.ts';
export { SimulatedSystem, type SimulatedSystemOptions } from './system/simulated.ts';
export type { SystemMemory, RealMemory, Syscall, Protection } from './system/api.ts';
export { runOracle, streamOracle, type OracleEvent, type OracleOptions } from './oracle/oracle.ts';
export {
  ALLOCATORS,
  findAllocatorLibrary,
  runAllocator,
  type AllocatorName,
  type AllocatorRun,
  type AllocatorRunOptions,
  type AllocatorSyscalls,
} from './oracle/allocators.ts';
export { oracleImages, type OracleImageOptions } from './oracle/images.ts';
export {
  walkImage,
  type WalkOptions,
  type HeapWalk,
  type ImageChunk,
  type ImageLink,
  type LinkTarget,
  type FreeList,
  type ChunkState as ImageChunkState,
} from './image/walk.ts';
export { readImage, writeImage, walkImageFile, sidecarPath, type ImageFile } from './image/files.ts';
export { parseSidecar, formatSidecar, DEFAULT_BASE, DEFAULT_ARENA, KEY_MARKER, FOREIGN_MARKER, type ImageSidecar } from './image/format.ts';
export { heapImage, heapImageWords, type ImagePlacement, type ImageWordSink, type ModelHeapImage } from './allocator/image.ts';
export { modelImages, parseImageAt, type ImageEvents, type ModelImagesOptions } from './replay/images.ts';
export { imageDifference, type ComparedImage } from './image/compare.ts';
export { differential, type DifferentialResult, type Difference } from './check/differential.ts';
export { MallocscopeError, TraceError, UsageError } from './errors.ts';
export { Explainer, captureBefore, explainStep, type StateBefore } from './report/explain.ts';
export { anatomyOfTrace, formatAnatomy, trimEstimate, type AnatomyAt, type AnatomyReport, type PinReport, type TrimEstimate } from './report/anatomy.ts';
export { writeMassif, type MassifOptions, type MassifSummary, type MassifTimeUnit, type MassifExtra } from './report/massif.ts';
export { footprintAnatomy, heapPin, freeBytes, blockBytes, type FootprintParts, type Anatomy, type HeapPin } from './allocator/anatomy.ts';
export type { FragmentationMetrics } from './report/peaks.ts';
export { compareTrace, FootprintObserver, parsePolicyColumn, parseSetColumn, type CompareFigures, type ColumnSpec } from './report/compare.ts';
export { NativeSystem, type NativeSystemOptions, type ResidentMemory, type SharedHeap } from './system/native.ts';
export { HeapImage, openHeapImage, type HeapImageOptions } from './system/heap-image.ts';
export { type BackingSidecar, backingSidecarPath } from './system/sidecar.ts';
export { ResidentPages, type ResidentEstimate } from './system/resident.ts';
