/**
 * Worker thread of parse-offthread.ts: joins a large body's segments and runs parseApiRequest on
 * it, so that the copy, JSON.parse and prompt hashing (hundreds of ms for 32 MiB) never block the
 * router's event loop. Segments come in and the joined body goes back as transferred
 * ArrayBuffers (no copies on the router's thread).
 */
import os from "node:os";
import { parentPort } from "node:worker_threads";
import { type ApiRequestRules, parseApiRequest } from "./request.ts";

export interface ParseJob {
  id: number;
  segments: Uint8Array[];
  rules: ApiRequestRules;
}

const port = parentPort;
if (!port) throw new Error("parse-worker.ts runs as a worker thread");
// On Linux a priority set with pid 0 applies to the calling thread only: parsing yields the CPU
// to the event loop thread when both want it (elsewhere it would renice the whole process).
if (process.platform === "linux")
  try {
    os.setPriority(0, Math.min(19, os.getPriority(0) + 10));
  } catch {
    // not permitted: parse at normal priority
  }
port.on("message", (job: ParseJob) => {
  // Buffer.concat of more than 4 KiB allocates its own ArrayBuffer: transferable as a whole.
  const body = Buffer.concat(job.segments);
  const result = parseApiRequest(body, job.rules);
  port.postMessage({ id: job.id, result, body }, [body.buffer as ArrayBuffer]);
});
