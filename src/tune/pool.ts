// Runs `mallocscope tune`'s candidates: on worker threads (one per core by default), each taking the next
// candidate as it finishes one, or in this thread. The results come back in the candidates' order, whoever
// ran them, so that the answer does not depend on how many workers there were.
import { Worker } from 'node:worker_threads';
import { MallocscopeError, TraceError } from '../errors.ts';
import type { Candidate } from './candidates.ts';
import { evaluate, type Evaluation, type EvaluationSetup } from './evaluate.ts';

export type WorkerRequest = { stop?: false; index: number; tunables: string } | { stop: true };

export interface WorkerReply {
  index: number;
  evaluation?: Evaluation;
  error?: { code?: string; message: string; exitCode?: number; file?: string; line?: number; reason?: string };
}

/** One candidate's outcome, with its tunables. */
export type CandidateResult = { index: number; tunables: string } & Evaluation;

/** The worker's module beside this one (worker.js in dist/, worker.ts when run from the sources). */
function workerUrl(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
}

/** A worker's error made again: a trace error keeps its file and line, ours keep their code. */
function errorFrom(data: NonNullable<WorkerReply['error']>): Error {
  if (data.file !== undefined && data.code !== undefined) return new TraceError(data.code, data.file, data.line ?? 0, data.reason ?? data.message);
  if (data.code !== undefined) return new MallocscopeError(data.code, data.message, data.exitCode);
  return new Error(data.message);
}

export interface RunOptions {
  /** Worker threads; 0 runs every candidate in this thread. */
  workers: number;
  /** After each candidate: how many are done of how many. */
  onProgress?: (done: number, total: number) => void;
}

/** Evaluates `candidates`; their results in the same order. */
export async function runCandidates(setup: EvaluationSetup, candidates: readonly Candidate[], options: RunOptions): Promise<CandidateResult[]> {
  const results: CandidateResult[] = new Array(candidates.length);
  if (options.workers === 0 || candidates.length === 0) {
    for (const [i, c] of candidates.entries()) {
      results[i] = { index: c.index, tunables: c.tunables, ...evaluate(setup, c.tunables) };
      options.onProgress?.(i + 1, candidates.length);
    }
    return results;
  }
  const slot = new Map(candidates.map((c, i) => [c.index, i]));
  let next = 0;
  let done = 0;
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      const fail = (error: Error) => {
        if (failed) return;
        failed = true;
        reject(error);
      };
      const feed = (worker: Worker) => {
        if (next < candidates.length) {
          const c = candidates[next++];
          worker.postMessage({ index: c.index, tunables: c.tunables } satisfies WorkerRequest);
        } else worker.postMessage({ stop: true } satisfies WorkerRequest);
      };
      const count = Math.min(options.workers, candidates.length);
      for (let w = 0; w < count; w++) {
        const worker = new Worker(workerUrl(), { workerData: setup });
        workers.push(worker);
        worker.on('message', (reply: WorkerReply) => {
          if (reply.error) return fail(errorFrom(reply.error));
          const i = slot.get(reply.index) as number;
          results[i] = { index: reply.index, tunables: candidates[i].tunables, ...(reply.evaluation as Evaluation) };
          options.onProgress?.(++done, candidates.length);
          if (done === candidates.length) resolve();
          else feed(worker);
        });
        worker.on('error', (error) => fail(new MallocscopeError('TUNE_WORKER', `a tune worker failed: ${error.message}`)));
        worker.on('exit', (code) => {
          if (code !== 0 && done < candidates.length) fail(new MallocscopeError('TUNE_WORKER', `a tune worker ended with status ${code}`));
        });
        feed(worker);
      }
    });
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
  return results;
}
