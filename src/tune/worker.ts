// A worker thread of `mallocscope tune`: replays the trace (reading the file itself) once per candidate it is
// sent, and answers with the figures, or with the error that stopped it, as plain data.
import { parentPort, workerData } from 'node:worker_threads';
import { MallocscopeError, TraceError } from '../errors.ts';
import { evaluate, type EvaluationSetup } from './evaluate.ts';
import type { WorkerReply, WorkerRequest } from './pool.ts';

const setup = workerData as EvaluationSetup;
const port = parentPort;
if (!port) throw new Error('the tune worker runs only as a worker thread');

port.on('message', (request: WorkerRequest) => {
  if (request.stop) {
    port.close();
    return;
  }
  let reply: WorkerReply;
  try {
    reply = { index: request.index, evaluation: evaluate(setup, request.tunables) };
  } catch (error) {
    reply = { index: request.index, error: errorData(error) };
  }
  port.postMessage(reply);
});

/** An error as data that crosses to the main thread, where pool.ts makes it again. */
function errorData(error: unknown): NonNullable<WorkerReply['error']> {
  if (error instanceof TraceError)
    return { code: error.code, message: error.message, exitCode: error.exitCode, file: error.file, line: error.line, reason: error.reason };
  if (error instanceof MallocscopeError) return { code: error.code, message: error.message, exitCode: error.exitCode };
  return { message: error instanceof Error ? error.message : String(error) };
}
