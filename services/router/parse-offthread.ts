/**
 * parseApiRequest for large bodies on a worker thread. JSON.parse of a 32 MiB body takes
 * 80–500 ms on the bench machine, during which no other client would be served; bodies up to
 * INLINE_PARSE_MAX_BYTES (about 1–3 ms) are parsed inline, larger ones (spilled into segments by
 * BodyBuffer) here. One worker, started
 * on first use; jobs run in order. A worker that dies fails its jobs (the caller answers 500) and
 * is replaced on the next job.
 */
import { Worker } from "node:worker_threads";
import type { ApiRejection, ApiRequest, ApiRequestRules } from "./request.ts";

export const INLINE_PARSE_MAX_BYTES = 256 * 1024;

interface Pending {
  resolve(v: { result: ApiRequest | ApiRejection; body: Buffer }): void;
  reject(err: Error): void;
}

/**
 * Under tsx (this file is .ts) the worker must register tsx's loader itself: module hooks are
 * per thread in Node 20. A compiled build (.js) starts the worker file directly. Resolved at
 * import time: import.meta.resolve goes through the loader hooks synchronously (a few ms).
 */
const WORKER_BOOT = import.meta.url.endsWith(".ts")
  ? `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(new URL("./parse-worker.ts", import.meta.url).href)}); });`
  : undefined;

function spawnWorker(): Worker {
  if (WORKER_BOOT === undefined) return new Worker(new URL("./parse-worker.js", import.meta.url));
  return new Worker(WORKER_BOOT, { eval: true });
}

export class OffThreadParser {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  /**
   * Joins and parses a body's segments on the worker. Each segment must own its ArrayBuffer
   * (BodyBuffer's do): they are moved there and must not be used afterwards. Resolves with the
   * result and the joined body.
   */
  parse(
    segments: Buffer[],
    rules: ApiRequestRules,
  ): Promise<{ result: ApiRequest | ApiRejection; body: Buffer }> {
    if (this.closed) return Promise.reject(new Error("parser closed"));
    const w = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage(
        { id, segments, rules },
        segments.map((s) => s.buffer as ArrayBuffer),
      );
    });
  }

  /** Starts the worker ahead of the first job (its start-up takes ~300 ms, off this thread). */
  warm(): void {
    if (!this.closed) this.ensureWorker();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = spawnWorker();
    w.on("message", (m: { id: number; result: ApiRequest | ApiRejection; body: Uint8Array }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      p?.resolve({
        result: m.result,
        body: Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength),
      });
    });
    const fail = (err: Error) => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`parse worker exited (${code})`)));
    w.unref();
    this.worker = w;
    return w;
  }

  /** Jobs waiting for the worker (tests). */
  queued(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
