/**
 * Distributed load between runner processes (an indexed Job's pods, or processes started by
 * hand): shard 0 coordinates, the others follow. Per step every shard warms up, then says it is
 * ready; once all are, shard 0 names a common start a moment ahead; after the point each follower
 * sends what it measured (gzipped wire form) and shard 0 merges it into the one export.
 *
 * Shard 0 serves a small HTTP API on the pod network (nothing else listens there):
 *   GET  /steps                          the steps to run (503 until shard 0 knows them)
 *   POST /steps/:i/ready?shard=k         held up to 20 s; 200 {startEpochNs} once all are ready, else 202
 *   POST /steps/:i/outcome?shard=k       gzip JSON: a shard outcome, or {error} when its step failed
 * Followers poll, so no call is held longer than an HTTP client waits for headers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync, gzipSync } from "node:zlib";
import { errorMessage, UserError } from "../lib/errors.ts";
import { type ShardOutcome, shardFromWire, shardToWire } from "../loadgen/shard.ts";

/** Which shard this runner is, and where shard 0 listens (shard 0 listens on its port). */
export interface ShardRole {
  index: number;
  count: number;
  coordinator: string;
  /**
   * The plan every shard must run (sha256 of plan.json): shard 0 refuses a shard started with
   * another, whose share would otherwise be merged into this point.
   */
  plan: string;
}

/** The header that carries ShardRole.plan. */
const PLAN_HEADER = "x-inferbench-plan";

/**
 * Where shard 0 listens: on loopback when the URL says loopback (shards on one host), else on
 * every interface (a pod's own DNS name resolves to its pod address).
 */
export function coordinatorListen(url: string): { host: string; port: number } {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || host === "::1" || /^127\./.test(host);
  return { host: loopback ? host : "0.0.0.0", port: u.port ? Number(u.port) : DEFAULT_SHARD_PORT };
}

export const DEFAULT_SHARD_PORT = 9400;
/** The common start is this far ahead of the last ready shard: enough for the replies to land. */
export const START_LEAD_NS = 500_000_000n;
const HOLD_MS = 20_000;
/** Compressed outcomes above this are refused (a point of ~1M streamed requests). */
const MAX_BODY = 512 * 1024 * 1024;
const MAX_UNZIPPED = 2 * 1024 * 1024 * 1024 - 1;

/** Parses `K/N` (`--shard`). */
export function parseShard(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || count > 256 || index >= count)
    throw new UserError(`--shard: "${v}" is not K/N with 0 ≤ K < N ≤ 256`, {
      hint: "an indexed Job passes $JOB_COMPLETION_INDEX/N, e.g. --shard 1/4",
    });
  return { index, count };
}

interface StepState {
  ready: Set<number>;
  start?: bigint;
  failed?: string;
  outcomes: Map<number, ShardOutcome>;
  waiters: (() => void)[];
}

/** Shard 0's side: the API above, and the waits runArm makes on it. */
export class ShardCoordinator {
  private steps: number[] | undefined;
  private readonly state = new Map<number, StepState>();

  private constructor(
    private readonly server: Server,
    readonly count: number,
    readonly port: number,
    private readonly plan: string,
  ) {}

  static async start(role: ShardRole): Promise<ShardCoordinator> {
    const { host, port } = coordinatorListen(role.coordinator);
    let self: ShardCoordinator | undefined;
    const server = createServer((req, res) => {
      void self!.handle(req, res).catch((err) => reply(res, 500, { error: errorMessage(err) }));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err) =>
        reject(
          new UserError(`shard 0 cannot listen on ${host}:${port}: ${errorMessage(err)}`, {
            exitCode: 1,
            hint: "the coordinator port (--coordinator URL's port) must be free on this host",
          }),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    self = new ShardCoordinator(
      server,
      role.count,
      (server.address() as AddressInfo).port,
      role.plan,
    );
    return self;
  }

  /** The steps every shard runs (shard 0's todo list, after resume). */
  setSteps(steps: readonly number[]): void {
    this.steps = [...steps];
  }

  /** Resolves once every other shard is ready for the step (bounded). */
  async othersReady(step: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    await this.until(
      step,
      (s) => s.ready.size >= this.count - 1,
      timeoutMs,
      signal,
      (s) => `shard(s) ${this.missing(s.ready).join(", ")} not ready for step ${step}`,
    );
  }

  release(step: number, startEpochNs: bigint): void {
    const s = this.of(step);
    s.start = startEpochNs;
    this.wake(s);
  }

  /** The other shards' outcomes of a step (bounded); a shard that reported failure fails it. */
  async collect(step: number, timeoutMs: number, signal?: AbortSignal): Promise<ShardOutcome[]> {
    await this.until(
      step,
      (s) => s.outcomes.size >= this.count - 1,
      timeoutMs,
      signal,
      (s) =>
        `shard(s) ${this.missing(new Set(s.outcomes.keys())).join(", ")} sent no result for step ${step}`,
    );
    return [...this.of(step).outcomes.values()].sort((a, b) => a.shard - b.shard);
  }

  /** Tells waiting followers the step failed here (they stop instead of waiting). */
  fail(step: number, why: string): void {
    const s = this.of(step);
    s.failed ??= why;
    this.wake(s);
  }

  async close(): Promise<void> {
    for (const s of this.state.values()) this.wake(s);
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private missing(have: Set<number>): number[] {
    return Array.from({ length: this.count - 1 }, (_, i) => i + 1).filter((k) => !have.has(k));
  }

  private of(step: number): StepState {
    let s = this.state.get(step);
    if (!s) {
      s = { ready: new Set(), outcomes: new Map(), waiters: [] };
      this.state.set(step, s);
    }
    return s;
  }

  private wake(s: StepState): void {
    for (const w of s.waiters.splice(0)) w();
  }

  private async until(
    step: number,
    done: (s: StepState) => boolean,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    what: (s: StepState) => string,
  ): Promise<void> {
    const s = this.of(step);
    const deadline = Date.now() + timeoutMs;
    while (!done(s)) {
      signal?.throwIfAborted();
      if (s.failed) throw new UserError(`step ${step}: ${s.failed}`, { exitCode: 1 });
      const left = deadline - Date.now();
      if (left <= 0)
        throw new UserError(`${what(s)} after ${Math.round(timeoutMs / 1000)} s`, {
          exitCode: 1,
          hint: "every shard of the runner must reach shard 0; see the other pods' logs",
        });
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 1000));
        s.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://shard0");
    if (req.headers[PLAN_HEADER] !== this.plan)
      return reply(res, 409, {
        error:
          "this shard was started with another plan.json than shard 0 (every shard runs the same plan)",
      });
    if (req.method === "GET" && url.pathname === "/steps") {
      if (!this.steps) return reply(res, 503, { error: "shard 0 has not planned its steps yet" });
      return reply(res, 200, { steps: this.steps, count: this.count });
    }
    const m = /^\/steps\/(\d+)\/(ready|outcome)$/.exec(url.pathname);
    const shard = Number(url.searchParams.get("shard"));
    if (req.method !== "POST" || !m || !Number.isInteger(shard) || shard < 1 || shard >= this.count)
      return reply(res, 404, { error: `no such call: ${req.method} ${url.pathname}` });
    const s = this.of(Number(m[1]));
    if (m[2] === "ready") {
      s.ready.add(shard);
      this.wake(s);
      const until = Date.now() + HOLD_MS;
      while (s.start === undefined && !s.failed && Date.now() < until) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, until - Date.now());
          s.waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
      if (s.failed) return reply(res, 409, { error: s.failed });
      if (s.start === undefined) return reply(res, 202, { waiting: true });
      return reply(res, 200, { startEpochNs: String(s.start) });
    }
    const body = JSON.parse(
      gunzipSync(await readBody(req), { maxOutputLength: MAX_UNZIPPED }).toString("utf8"),
    ) as { error?: unknown };
    if (typeof body.error === "string") {
      s.failed ??= `shard ${shard}: ${body.error}`;
      this.wake(s);
      return reply(res, 200, { ok: true });
    }
    const outcome = shardFromWire(body);
    if (outcome.shard !== shard)
      throw new Error(`outcome of shard ${outcome.shard} sent as ${shard}`);
    s.outcomes.set(shard, outcome);
    this.wake(s);
    return reply(res, 200, { ok: true });
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) throw new Error(`outcome larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** A follower's side: the same calls, retried until shard 0 answers (it may start later). */
export class ShardFollower {
  constructor(
    readonly role: ShardRole,
    private readonly signal?: AbortSignal,
  ) {}

  private url(path: string): string {
    return `${this.role.coordinator.replace(/\/$/, "")}${path}`;
  }

  /** Shard 0's step list, waiting (bounded) for shard 0 to come up and plan. */
  async steps(timeoutMs: number): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    let last = "no answer";
    for (;;) {
      this.signal?.throwIfAborted();
      try {
        const r = await fetch(this.url("/steps"), {
          headers: { [PLAN_HEADER]: this.role.plan },
          signal: this.timeout(10_000),
        });
        const b = (await r.json()) as { steps?: number[]; count?: number; error?: string };
        if (r.status === 409)
          throw new UserError(`shard 0 refused this shard: ${b.error}`, { exitCode: 2 });
        if (r.ok && Array.isArray(b.steps)) {
          if (b.count !== this.role.count)
            throw new UserError(
              `shard 0 runs ${b.count} shards, this one was started as one of ${this.role.count}`,
              { exitCode: 2, hint: "start every shard with the same --shard K/N count" },
            );
          return b.steps;
        }
        last = `HTTP ${r.status} ${b.error ?? ""}`.trim();
      } catch (err) {
        if (err instanceof UserError) throw err;
        last = errorMessage(err);
      }
      if (Date.now() > deadline)
        throw new UserError(
          `shard 0 at ${this.role.coordinator} did not answer in ${Math.round(timeoutMs / 1000)} s (${last})`,
          { exitCode: 1, hint: "shard 0 must be running and reachable at --coordinator" },
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Says this shard is warm; resolves with the common start once every shard is. */
  async ready(step: number, timeoutMs: number): Promise<bigint> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.signal?.throwIfAborted();
      const r = await fetch(this.url(`/steps/${step}/ready?shard=${this.role.index}`), {
        method: "POST",
        headers: { [PLAN_HEADER]: this.role.plan },
        signal: this.timeout(HOLD_MS + 10_000),
      });
      const b = (await r.json()) as { startEpochNs?: string; error?: string };
      if (r.status === 200 && b.startEpochNs) return BigInt(b.startEpochNs);
      if (r.status !== 202)
        throw new UserError(`step ${step}: shard 0 said: ${b.error ?? `HTTP ${r.status}`}`, {
          exitCode: 1,
        });
      if (Date.now() > deadline)
        throw new UserError(`step ${step}: no common start within ${timeoutMs / 1000} s`, {
          exitCode: 1,
        });
    }
  }

  async send(step: number, outcome: ShardOutcome | { error: string }): Promise<void> {
    const wire = "error" in outcome ? outcome : shardToWire(outcome);
    const r = await fetch(this.url(`/steps/${step}/outcome?shard=${this.role.index}`), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-encoding": "gzip",
        [PLAN_HEADER]: this.role.plan,
      },
      body: gzipSync(JSON.stringify(wire)),
      signal: this.timeout(10 * 60_000),
    });
    const b = (await r.json()) as { error?: string };
    if (!r.ok)
      throw new UserError(
        `step ${step}: shard 0 refused this shard's result: ${b.error ?? r.status}`,
        {
          exitCode: 1,
        },
      );
  }

  private timeout(ms: number): AbortSignal {
    return this.signal
      ? AbortSignal.any([this.signal, AbortSignal.timeout(ms)])
      : AbortSignal.timeout(ms);
  }
}
