/**
 * Streaming HTTP client on an undici keep-alive pool. Every chunk is stamped on arrival with the
 * monotonic clock (process.hrtime.bigint) mapped to epoch nanoseconds.
 */
import { StringDecoder } from "node:string_decoder";
import { Pool } from "undici";
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
 * Keeps one flat string and chunk end offsets per request instead of one string per chunk: far
 * fewer long-lived heap objects, so fewer and shorter GC pauses during a measurement.
 */
function packChunks(res: SendResult, chunks: string[]): void {
  let end = 0;
  for (const c of chunks) {
    end += c.length;
    res.chunkEnds.push(end);
  }
  res.body = chunks.join("");
}

/** The chunks of a result, as received. */
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

  /** Sends one POST; never throws (failures come back as status/error). */
  async post(
    path: string,
    body: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<SendResult> {
    const chunkHr: number[] = [];
    const chunks: string[] = [];
    const sentHr = monoNs();
    const res: SendResult = { status: 0, sentHr, endHr: sentHr, chunkHr, body: "", chunkEnds: [] };
    try {
      const r = await this.pool.request({
        path,
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "text/event-stream, application/json",
          ...headers,
        },
        body,
        signal,
      });
      res.status = r.statusCode;
      const be = r.headers["x-inferbench-backend"];
      if (be !== undefined) res.backend = Array.isArray(be) ? be.join(",") : String(be);
      const decoder = new StringDecoder("utf8");
      await new Promise<void>((resolve, reject) => {
        r.body.on("data", (buf: Buffer) => {
          const t = monoNs();
          const s = decoder.write(buf);
          if (s.length > 0) {
            chunkHr.push(t);
            chunks.push(s);
          }
        });
        r.body.on("end", () => {
          const rest = decoder.end();
          if (rest.length > 0) {
            chunkHr.push(monoNs());
            chunks.push(rest);
          }
          resolve();
        });
        r.body.on("error", reject);
      });
      res.endHr = monoNs();
      packChunks(res, chunks);
      if (res.status < 200 || res.status >= 300) {
        res.error = `HTTP ${res.status}: ${res.body.slice(0, 500)}`;
      }
    } catch (err) {
      res.endHr = monoNs();
      packChunks(res, chunks);
      const e = err as Error & { code?: string };
      res.error = `${e.code ? `${e.code}: ` : ""}${e.message}`;
    }
    return res;
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }

  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}
