/**
 * Streaming HTTP client on an undici keep-alive pool. Every chunk is stamped on arrival with the
 * monotonic clock (process.hrtime.bigint) mapped to epoch nanoseconds.
 */
import { StringDecoder } from "node:string_decoder";
import { type Dispatcher, Pool } from "undici";
import type { ServerUsage } from "../results/genai-perf/sse.ts";

const HR0 = process.hrtime.bigint();
/** The monotonic origin, for worker threads that share this clock. */
export const HR0_STRING = HR0.toString();
const EPOCH0 = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;

/**
 * Monotonic nanoseconds since module load, as a number (exact integers for 104 days). Kept as
 * plain numbers so per-chunk timestamps are unboxed doubles, not heap BigInts the GC must copy.
 */
export function monoNs(): number {
  return Number(process.hrtime.bigint() - HR0);
}

/** Monotonic now, as epoch nanoseconds. */
export function nowEpochNs(): bigint {
  return EPOCH0 + (process.hrtime.bigint() - HR0);
}

export function hrToEpochNs(mono: number): bigint {
  return EPOCH0 + BigInt(mono);
}

/** An epoch instant (another process's, say) on this process's monotonic clock. */
export function epochToMonoNs(epochNs: bigint): number {
  return Number(epochNs - EPOCH0);
}

export interface SendResult {
  /** HTTP status, 0 when no response arrived. */
  status: number;
  /** Monotonic ns (monoNs). */
  sentHr: number;
  endHr: number;
  chunkHr: number[];
  /** The whole body as one flat string; chunk i is body.slice(chunkEnds[i-1] ?? 0, chunkEnds[i]). */
  body: string;
  chunkEnds: number[];
  backend?: string;
  error?: string;
  usage?: ServerUsage;
  /**
   * Raw body buffers and their arrival stamps, not yet decoded (see `materialize`): Buffers live
   * off the V8 heap, so young-generation GCs during a measurement need not copy response text.
   */
  raw?: { bufs: Buffer[]; arrivals: number[]; endHr?: number };
}

/** Decodes a result's raw buffers into body / chunkEnds / chunkHr (once; no-op afterwards). */
export function materialize(res: SendResult): SendResult {
  const raw = res.raw;
  if (raw) {
    res.raw = undefined;
    decodeInto(res, raw.bufs, raw.arrivals, raw.endHr);
  }
  return res;
}

/** "localhost:8000" / "http://h:p/" → origin; scheme optional as in GenAI-Perf `-u`. */
export function normalizeUrl(url: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  const u = new URL(withScheme);
  return u.origin;
}

export interface HttpClientOptions {
  /** Connection cap; undefined = as many as requests in flight. */
  connections?: number;
  requestTimeoutMs: number;
}

/**
 * Decodes the received buffers in arrival order as a streaming UTF-8 decoder would: a buffer that
 * ends inside a character yields its complete part, and one yielding no text is no chunk (its
 * stamp is dropped). Keeps one flat string and chunk end offsets per request instead of one string
 * per chunk: far fewer long-lived heap objects, so fewer and shorter GC pauses.
 */
export function decodeInto(
  res: Pick<SendResult, "body" | "chunkEnds" | "chunkHr">,
  bufs: readonly Buffer[],
  arrivals: readonly number[],
  /** Body complete: flush a trailing partial character, stamped with this end time. */
  endHr?: number,
): void {
  const decoder = new StringDecoder("utf8");
  const parts: string[] = [];
  let end = 0;
  for (let i = 0; i < bufs.length; i++) {
    const s = decoder.write(bufs[i]!);
    if (s.length === 0) continue;
    end += s.length;
    parts.push(s);
    res.chunkHr.push(arrivals[i]!);
    res.chunkEnds.push(end);
  }
  const rest = endHr === undefined ? "" : decoder.end();
  if (rest.length > 0 && endHr !== undefined) {
    end += rest.length;
    parts.push(rest);
    res.chunkHr.push(endHr);
    res.chunkEnds.push(end);
  }
  res.body = parts.length === 1 ? parts[0]! : parts.join("");
}

/** The chunks of a result, as received (call `materialize` first). */
export function resultChunks(res: Pick<SendResult, "body" | "chunkEnds">): string[] {
  const out: string[] = [];
  let start = 0;
  for (const end of res.chunkEnds) {
    out.push(res.body.slice(start, end));
    start = end;
  }
  return out;
}

export class HttpClient {
  private readonly pool: Pool;
  constructor(
    readonly origin: string,
    opts: HttpClientOptions,
  ) {
    this.pool = new Pool(origin, {
      connections: opts.connections === undefined ? null : Math.max(1, opts.connections),
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: opts.requestTimeoutMs,
      bodyTimeout: opts.requestTimeoutMs,
      connect: { timeout: 10_000 },
    });
  }

  /**
   * Sends one POST; never throws (failures come back as status/error). Drives undici's dispatcher
   * directly: each body chunk costs one clock read and one array push on arrival (no Readable
   * stream, no async-hooks scope, no per-chunk decoding). Decoding waits for `materialize` (after
   * the measurement), chunk by chunk in arrival order, so the chunks and their stamps are what a
   * streaming decoder would have produced.
   */
  post(
    path: string,
    body: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<SendResult> {
    const sentHr = monoNs();
    const res: SendResult = {
      status: 0,
      sentHr,
      endHr: sentHr,
      chunkHr: [],
      body: "",
      chunkEnds: [],
    };
    return new Promise<SendResult>((resolve) => {
      const arrivals: number[] = [];
      const bufs: Buffer[] = [];
      let done = false;
      const finishWith = (err?: Error & { code?: string }) => {
        if (done) return;
        done = true;
        res.endHr = monoNs();
        if (bufs.length > 0) res.raw = { bufs, arrivals, endHr: err ? undefined : res.endHr };
        if (err) res.error = `${err.code ? `${err.code}: ` : ""}${err.message}`;
        else if (res.status < 200 || res.status >= 300)
          res.error = `HTTP ${res.status}: ${materialize(res).body.slice(0, 500)}`;
        resolve(res);
      };
      let onAbort: (() => void) | undefined;
      const handler: Dispatcher.DispatchHandler = {
        onConnect(abort) {
          if (signal?.aborted) abort(signal.reason);
          else if (signal) {
            onAbort = () => abort(signal.reason);
            signal.addEventListener("abort", onAbort, { once: true });
          }
        },
        onHeaders(statusCode, rawHeaders) {
          if (statusCode < 200) return true;
          res.status = statusCode;
          // Header bytes read as latin1, as undici's own header parsing does.
          let backend: string | undefined;
          for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
            if (rawHeaders[i]!.toString("latin1").toLowerCase() !== "x-inferbench-backend")
              continue;
            const v = rawHeaders[i + 1]!.toString("latin1");
            backend = backend === undefined ? v : `${backend},${v}`;
          }
          if (backend !== undefined) res.backend = backend;
          return true;
        },
        onData(chunk) {
          arrivals.push(monoNs());
          bufs.push(chunk);
          return true;
        },
        onComplete() {
          if (onAbort) signal?.removeEventListener("abort", onAbort);
          finishWith();
        },
        onError(err) {
          if (onAbort) signal?.removeEventListener("abort", onAbort);
          finishWith(err);
        },
      };
      this.pool.dispatch(
        {
          path,
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: "text/event-stream, application/json",
            ...headers,
          },
          body,
        },
        handler,
      );
    });
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }

  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}
