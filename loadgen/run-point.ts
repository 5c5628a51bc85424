/**
 * The load generator: closed loop (concurrency), open loop (constant / Poisson / gamma rate, with
 * an optional concurrency cap), trace replay and multi-turn sessions; warm-up not exported;
 * --max-error-rate abort; validity gate; GenAI-Perf artifacts plus inferbench extras.
 *
 * Schedule lag of a request = actual send − eligible send, where eligible = max(intended arrival,
 * the moment a concurrency slot freed, the moment its session's previous turn finished (+delay)).
 * Waiting on the server is therefore not counted as generator lag; the achieved-rate check of the
 * validity gate catches a saturated server instead.
 */
import { setMaxListeners } from "node:events";
import { join } from "node:path";
import {
  buildWorkload,
  type ChatMessage,
  type SessionSpec,
  type WorkItem,
  type Workload,
} from "../datagen/workload.ts";
import { UserError } from "../lib/errors.ts";
import { createRng, type Rng } from "../lib/random.ts";
import { getTokenizer } from "../lib/tokenizer.ts";
import {
  type ExperimentMode,
  endpointPath,
  type InputConfigArgs,
  inputConfigBlock,
  runFolderName,
  writeArtifacts,
} from "../results/genai-perf/artifacts.ts";
import {
  type GenAiPerfStats,
  type GoodputTargets,
  type RawRequest,
  type RequestMetrics,
  requestMetrics,
  summarize,
} from "../results/genai-perf/metrics.ts";
import { writePlots } from "../results/genai-perf/plots.ts";
import { nonEmptyResponses, parseResponses, splitSseEvents } from "../results/genai-perf/sse.ts";
import { loadPointText } from "../stacks/load-point.ts";
import type { LoadPoint, SloTargets, WorkloadPlan } from "../stacks/plan-types.ts";
import {
  epochToMonoNs,
  HttpClient,
  hrToEpochNs,
  materialize,
  monoNs,
  normalizeUrl,
  resultChunks,
  type SendResult,
} from "./client.ts";
import { collectGarbage } from "./gc.ts";
import { ProgressBar } from "./progress.ts";
import { arrivalOffsetsNs, defaultRequestCount, traceOffsetsNs } from "./schedule.ts";
import {
  mergeShards,
  ownedOf,
  ownsRequest,
  type ShardOf,
  type ShardOutcome,
  type ShardSpec,
  shareOf,
  slotsOf,
} from "./shard.ts";
import { preciseWait, warmPreciseTimer } from "./timer.ts";
import { achievedRate, judgeValidity, type Validity } from "./validity.ts";

export const INFERBENCH_VERSION = "inferbench 0.1.0";

/** Exit statuses of `inferbench profile` (and `exitCodeFor`). */
export const EXIT = { ok: 0, failure: 1, badInput: 2, invalid: 3, errors: 4 } as const;

export interface RunLoadPointOptions {
  /** Server origin or host:port (scheme optional). */
  url: string;
  models: string[];
  workload: WorkloadPlan;
  loadPoint: LoadPoint;
  seed: number;
  warmupRequests: number;
  /** Parent folder; the GenAI-Perf run folder is created inside it. */
  artifactDir: string;
  slo?: SloTargets;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Custom endpoint path (default from endpoint type). */
  endpoint?: string;
  modelSelectionStrategy?: "round_robin" | "random";
  /** Abort when failed/finished exceeds this fraction (after 10 finished). */
  maxErrorRate?: number;
  /** Header carrying the session id of multi-turn workloads. */
  sessionHeader?: string;
  extraInputs?: Record<string, unknown>;
  /** Ask for `usage` in streams (stream_options.include_usage). Default true. */
  serverUsage?: boolean;
  /** Tokenizer (model name or family); default the first model. */
  tokenizer?: string;
  profileExportFile?: string;
  requestTimeoutMs?: number;
  /** GenAI-Perf goodput targets; default derived from `slo`. */
  goodput?: GoodputTargets;
  /** Progress bar on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  /** Label artifacts as emulated (engine-sim). */
  emulated?: boolean;
  /** Overrides for the echoed input_config (the CLI passes its flags). */
  inputConfig?: Partial<InputConfigArgs>;
  /** Use this workload instead of building one from `workload.dataset`. */
  prebuiltWorkload?: Workload;
  /** Folder name override (sweeps, auto probes). */
  runFolder?: string;
  /** Write SVG charts under `<run>/plots/`. */
  generatePlots?: boolean;
  /** Replay the workload's recorded timestamps (trace datasets); the load point's rate is ignored. */
  fixedSchedule?: boolean;
  /** Time-boxed measurement (GenAI-Perf's older `--measurement-interval`): stop sending after it. */
  durationMs?: number;
}

export interface LoadPointResult {
  runDir: string;
  valid: boolean;
  invalidReasons: string[];
  validity: Validity;
  /** Set when the run stopped early (max error rate, signal). */
  aborted?: string;
  stats?: GenAiPerfStats;
  requestCount: number;
  errorCount: number;
  errorRate: number;
  lagP99Ms: number;
  targetRate?: number;
  achievedRate?: number;
  files: string[];
  exitCode: number;
}

export interface RequestRecord {
  index: number;
  model: string;
  session_id?: string;
  status: "ok" | "error";
  http_status: number;
  error?: string;
  backend?: string;
  intended_ns: bigint;
  eligible_ns: bigint;
  sent_ns: bigint;
  end_ns: bigint;
  lag_ns: number;
  schedule_delay_ns: number;
  chunks: number;
  ttft_ns?: number;
  latency_ns?: number;
  isl_tokens?: number;
  osl_tokens?: number;
  usage_prompt_tokens?: number;
  usage_completion_tokens?: number;
}

export function sloToGoodput(slo: SloTargets | undefined): GoodputTargets | undefined {
  if (!slo) return undefined;
  const g: GoodputTargets = {};
  if (slo.ttftMs !== undefined) g.time_to_first_token = slo.ttftMs;
  if (slo.itlMs !== undefined) g.inter_token_latency = slo.itlMs;
  if (slo.e2eMs !== undefined) g.request_latency = slo.e2eMs;
  return Object.keys(g).length > 0 ? g : undefined;
}

/** Request body in GenAI-Perf's key order: model, messages|prompt, stream, max_tokens, extras. */
export function buildBody(opts: {
  model: string;
  messages: ChatMessage[];
  endpointType: "chat" | "completions";
  streaming: boolean;
  maxTokens?: number;
  ignoreEos?: boolean;
  minTokens?: number;
  serverUsage?: boolean;
  extraInputs?: Record<string, unknown>;
}): Record<string, unknown> {
  const b: Record<string, unknown> = { model: opts.model };
  if (opts.endpointType === "chat") b["messages"] = opts.messages;
  // A one-element list, as genai-perf's completions converter sends (its parser joins the list).
  else b["prompt"] = [opts.messages.map((m) => m.content).join(" ")];
  if (opts.streaming) b["stream"] = true;
  if (opts.maxTokens !== undefined) b["max_tokens"] = opts.maxTokens;
  if (opts.ignoreEos) b["ignore_eos"] = true;
  if (opts.minTokens !== undefined) b["min_tokens"] = opts.minTokens;
  if (opts.streaming && opts.serverUsage) b["stream_options"] = { include_usage: true };
  for (const [k, v] of Object.entries(opts.extraInputs ?? {})) {
    if (k.startsWith("{")) continue;
    b[k] = v;
  }
  return b;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

const immediate = () => new Promise<void>((r) => setImmediate(r));

/**
 * Sleeps until a monotonic instant. Long waits use a plain timer; then the precise timer thread
 * wakes us ~0.15 ms early (no spinning, little CPU) and setImmediate turns cover the rest. Without
 * worker threads: setImmediate turns for the last ~1.5 ms.
 */
export async function sleepUntil(targetHr: number, signal?: AbortSignal): Promise<void> {
  let rem = targetHr - monoNs();
  if (rem > 25_000_000) await sleep((rem - 20_000_000) / 1e6, signal);
  if (signal?.aborted) return;
  rem = targetHr - monoNs();
  if (rem > PRECISE_LEAD_NS) {
    const precise = preciseWait(targetHr - PRECISE_LEAD_NS);
    if (precise) await precise;
    else if (rem > 2_000_000) await sleep((rem - 1_500_000) / 1e6, signal);
  }
  rem = targetHr - monoNs();
  while (rem > 0 && !signal?.aborted) {
    await immediate();
    rem = targetHr - monoNs();
  }
}

const PRECISE_LEAD_NS = 150_000;

interface Dispatch {
  /** Model fixed by the dataset entry (GenAI-Perf ties the model to the payload). */
  model?: string;
  messages: ChatMessage[];
  maxTokens?: number;
  islTokens?: number;
  sessionId?: string;
  /** Called with the answer text (sessions grow their history). */
  onAnswer?: (text: string | undefined) => void;
}

/** Hands out requests: a cycled pool, a trace in order, or turns of ready sessions. */
interface Source {
  /** The next request, waiting (and reporting when it became ready) for sessions. */
  next(signal: AbortSignal): Promise<{ d: Dispatch; readyHr?: number } | undefined>;
  /** Total requests this source can produce (Infinity for pools). */
  capacity: number;
  /** Requests never wait on earlier answers, so the next one can be built ahead of its send time. */
  prefetchable?: boolean;
}

/** A shard takes every `count`-th request of the global sequence, from its `index`. */
const ONE: ShardOf = { index: 0, count: 1 };

function poolSource(items: WorkItem[], models: readonly string[], sh: ShardOf = ONE): Source {
  let i = sh.index;
  return {
    capacity: Number.POSITIVE_INFINITY,
    prefetchable: true,
    async next() {
      const k = i % items.length;
      i += sh.count;
      const it = items[k]!;
      return {
        d: {
          model: models[k],
          messages: it.messages(),
          maxTokens: it.maxTokens,
          islTokens: it.islTokens,
        },
      };
    },
  };
}

/** Model of each dataset entry: round robin over entries, or a seeded random pick. */
export function entryModels(
  n: number,
  models: readonly string[],
  strategy: string,
  rng: Rng,
): string[] {
  return Array.from({ length: n }, (_, i) =>
    strategy === "random" ? models[rng.int(models.length)]! : models[i % models.length]!,
  );
}

function traceSource(items: WorkItem[], sh: ShardOf = ONE): Source {
  let i = sh.index;
  return {
    capacity: shareOf(items.length, sh),
    prefetchable: true,
    async next() {
      const it = items[i];
      i += sh.count;
      if (!it) return undefined;
      return { d: { messages: it.messages(), maxTokens: it.maxTokens, islTokens: it.islTokens } };
    },
  };
}

/** Sessions: a turn is ready once the previous turn of its session answered (+ its delay). */
function sessionSource(specs: SessionSpec[]): Source {
  interface State {
    spec: SessionSpec;
    turn: number;
    history: ChatMessage[];
  }
  const ready: { s: State; at: number }[] = specs.map((spec) => ({
    s: { spec, turn: 0, history: spec.system ? [{ role: "system", content: spec.system }] : [] },
    at: monoNs(),
  }));
  let active = 0;
  let delayed = 0;
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  const capacity = specs.reduce((a, s) => a + s.turns.length, 0);
  return {
    capacity,
    async next(signal) {
      for (;;) {
        const r = ready.shift();
        if (r) {
          const { s } = r;
          const t = s.spec.turns[s.turn]!;
          const msgs: ChatMessage[] = [...s.history, { role: "user", content: t.user }];
          active++;
          // Token counts are known by construction only for a first turn without system prompt.
          const known = s.turn === 0 && !s.spec.system ? t.userTokens : undefined;
          return {
            readyHr: r.at,
            d: {
              messages: msgs,
              maxTokens: t.maxTokens,
              islTokens: known,
              sessionId: s.spec.id,
              onAnswer: (answer) => {
                active--;
                s.history = [...msgs, { role: "assistant", content: answer ?? "" }];
                s.turn++;
                const nt = s.spec.turns[s.turn];
                if (nt) {
                  const push = () => {
                    ready.push({ s, at: monoNs() });
                    wake();
                  };
                  if (nt.delayMs) {
                    delayed++;
                    setTimeout(() => {
                      delayed--;
                      push();
                    }, nt.delayMs);
                  } else push();
                } else wake();
              },
            },
          };
        }
        if (active === 0 && delayed === 0 && ready.length === 0) return undefined;
        if (signal.aborted) return undefined;
        await new Promise<void>((res) => {
          waiters.push(res);
          signal.addEventListener("abort", () => res(), { once: true });
        });
      }
    },
  };
}

interface Ctx {
  client: HttpClient;
  path: string;
  opts: RunLoadPointOptions;
  rng: Rng;
  endpointType: "chat" | "completions";
  streaming: boolean;
  headers: Record<string, string>;
  sessionHeader: string;
  abort: AbortController;
  modelCounter: number;
  /** Round-robin models step by the shard count (a shard's k-th request is the global k·N+i-th). */
  modelStride: number;
}

export interface Sent {
  d: Dispatch;
  model: string;
  payload: string;
  res: SendResult;
  intendedHr: number;
  eligibleHr: number;
  sessionId?: string;
}

/** A request ready to go: payload serialized and headers merged ahead of its send time. */
interface Prepared {
  d: Dispatch;
  model: string;
  payload: string;
  headers: Record<string, string>;
}

function prepare(ctx: Ctx, d: Dispatch): Prepared {
  const models = ctx.opts.models;
  let model = d.model;
  if (model === undefined && ctx.opts.modelSelectionStrategy === "random")
    model = models[ctx.rng.int(models.length)]!;
  else if (model === undefined) {
    model = models[ctx.modelCounter % models.length]!;
    ctx.modelCounter += ctx.modelStride;
  }
  const w = ctx.opts.workload;
  const body = buildBody({
    model,
    messages: d.messages,
    endpointType: ctx.endpointType,
    streaming: ctx.streaming,
    maxTokens: d.maxTokens,
    ignoreEos: w.ignoreEos,
    minTokens: w.minTokens,
    serverUsage: ctx.opts.serverUsage ?? true,
    extraInputs: ctx.opts.extraInputs,
  });
  const payload = JSON.stringify(body);
  const headers = d.sessionId ? { ...ctx.headers, [ctx.sessionHeader]: d.sessionId } : ctx.headers;
  return { d, model, payload, headers };
}

async function sendOne(ctx: Ctx, p: Prepared): Promise<Omit<Sent, "intendedHr" | "eligibleHr">> {
  const { d, model, payload } = p;
  // No per-request AbortSignal (a listener per request costs); abort destroys the pool instead.
  const res = await ctx.client.post(ctx.path, payload, p.headers);
  if (d.onAnswer) {
    const parsed = res.error
      ? undefined
      : parseResponses(materialize(res).chunkHr.map(BigInt), resultChunks(res));
    d.onAnswer(
      parsed
        ? nonEmptyResponses(parsed)
            .map((r) => r.text)
            .join("")
        : undefined,
    );
  }
  return { d, model, payload, res, sessionId: d.sessionId };
}

interface Phase {
  sent: Sent[];
  startHr: number;
  endHr: number;
  targetRate?: number;
  aborted?: string;
}

type Mode =
  | { kind: "closed"; concurrency: number }
  | { kind: "open"; offsetsNs: number[]; maxConcurrency?: number; targetRate: number };

async function runPhase(
  ctx: Ctx,
  source: Source,
  mode: Mode,
  count: number,
  label: string,
  measured: boolean,
  durationMs?: number,
  /** A common start (monotonic ns) shared with other shards; default 2 ms from now. */
  startAtHr?: number,
): Promise<Phase> {
  const sent: Sent[] = [];
  const pending = new Set<Promise<number>>();
  const progress = new ProgressBar(ctx.opts.progress ?? Boolean(process.stderr.isTTY));
  let inFlight = 0;
  let finished = 0;
  let errors = 0;
  let aborted: string | undefined;
  const slotWaiters: ((hr: number) => void)[] = [];
  const startHr = startAtHr ?? monoNs() + 2_000_000;
  const signal = ctx.abort.signal;
  const total = Math.min(count, source.capacity);
  const deadlineHr = durationMs === undefined ? undefined : startHr + Math.round(durationMs * 1e6);
  const pastDeadline = () => deadlineHr !== undefined && monoNs() >= deadlineHr;

  /** Sends without waiting; the promise resolves with the completion time (monotonic ns). */
  const launch = (pr: Prepared, intendedHr: number, eligibleHr: number): Promise<number> => {
    inFlight++;
    const p = sendOne(ctx, pr).then((s) => {
      const doneHr = monoNs();
      inFlight--;
      finished++;
      const rec: Sent = { ...s, intendedHr, eligibleHr };
      if (s.res.error || s.res.status < 200 || s.res.status >= 300) errors++;
      sent.push(rec);
      const maxErr = ctx.opts.maxErrorRate;
      if (
        measured &&
        maxErr !== undefined &&
        finished >= 10 &&
        errors / finished > maxErr &&
        !aborted
      ) {
        aborted = `error rate ${(errors / finished).toFixed(3)} > --max-error-rate ${maxErr}`;
        ctx.abort.abort();
      }
      slotWaiters.shift()?.(doneHr);
      progress.update({
        label,
        total,
        completed: finished,
        errors,
        inFlight,
        elapsedS: Number(monoNs() - startHr) / 1e9,
      });
      return doneHr;
    });
    pending.add(p);
    p.finally(() => pending.delete(p));
    return p;
  };

  if (mode.kind === "closed") {
    // Shards start their slots together; alone, the first sends go out at once.
    if (startAtHr !== undefined) await sleepUntil(startHr, signal);
    let started = 0;
    // A slot is eligible for its next request the moment the previous one completed, so the
    // event-loop delay before the refill counts as lag.
    const worker = async () => {
      let slotFreeHr = monoNs();
      while (started < total && !signal.aborted && !pastDeadline()) {
        started++;
        const n = await source.next(signal);
        if (!n) break;
        const elig = n.readyHr !== undefined && n.readyHr > slotFreeHr ? n.readyHr : slotFreeHr;
        slotFreeHr = await launch(prepare(ctx, n.d), elig, elig);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, mode.concurrency) }, worker));
  } else {
    const offsets = mode.offsetsNs;
    // Sources whose requests never wait on answers get the next request built (JSON and all)
    // while waiting for its send time, so none of that work sits between wake-up and send.
    const ahead = source.prefetchable === true;
    for (let k = 0; k < total && k < offsets.length && !signal.aborted && !pastDeadline(); k++) {
      const intendedHr = startHr + offsets[k]!;
      let n = ahead ? await source.next(signal) : undefined;
      if (ahead && !n) break;
      const pre = n ? prepare(ctx, n.d) : undefined;
      await sleepUntil(intendedHr, signal);
      let eligibleHr = intendedHr;
      if (mode.maxConcurrency !== undefined && inFlight >= mode.maxConcurrency) {
        const freed = await new Promise<number>((r) => slotWaiters.push(r));
        if (freed > eligibleHr) eligibleHr = freed;
      }
      n ??= await source.next(signal);
      if (!n) break;
      if (n.readyHr !== undefined && n.readyHr > eligibleHr) eligibleHr = n.readyHr;
      launch(pre ?? prepare(ctx, n.d), intendedHr, eligibleHr);
    }
  }
  while (pending.size > 0) await Promise.all([...pending]);
  progress.done();
  if (!aborted && ctx.opts.signal?.aborted) aborted = "cancelled";
  return {
    sent,
    startHr,
    endHr: monoNs(),
    targetRate: mode.kind === "open" ? mode.targetRate : undefined,
    aborted,
  };
}

/** Min or max of bigints (Math.min/max do not take bigints). */
function extremeBig(xs: readonly bigint[], which: "min" | "max"): bigint {
  let best = xs[0]!;
  for (const x of xs) if (which === "min" ? x < best : x > best) best = x;
  return best;
}

export function validateLoadPoint(lp: LoadPoint): void {
  if (lp.kind === "concurrency") {
    if (!Number.isInteger(lp.concurrency) || lp.concurrency < 1)
      throw new UserError(`concurrency must be an integer ≥ 1 (got ${lp.concurrency})`);
  } else {
    if (!(lp.requestRate > 0))
      throw new UserError(`request rate must be > 0 (got ${lp.requestRate})`);
    if (lp.distribution === "gamma" && !(lp.burstiness === undefined || lp.burstiness > 0))
      throw new UserError("burstiness must be > 0");
    if (
      lp.maxConcurrency !== undefined &&
      !(Number.isInteger(lp.maxConcurrency) && lp.maxConcurrency >= 1)
    )
      throw new UserError("max concurrency must be an integer ≥ 1");
  }
}

/** The tokenizer that counts tokens and synthesizes prompts: the flag's, else the first model's. */
const tokenizerOf = (opts: RunLoadPointOptions) => opts.tokenizer ?? opts.models[0]!;

/** The point's workload, from the dataset plan (or the caller's prebuilt one). */
function workloadOf(opts: RunLoadPointOptions): Workload {
  const w = opts.workload;
  return (
    opts.prebuiltWorkload ??
    buildWorkload(w.dataset, {
      tokenizer: tokenizerOf(opts),
      seed: opts.seed,
      outputTokensMean: w.outputTokensMean,
      outputTokensStddev: w.outputTokensStddev,
    })
  );
}

/** What running a point's phases gave: the measured phase, and what finishing it needs. */
interface Ran {
  workload: Workload;
  phase: Phase;
  endpointType: "chat" | "completions";
  path: string;
  itemModels: string[];
}

/** Runs one load point end to end and writes its artifact folder. Never throws for HTTP failures. */
export async function runLoadPoint(opts: RunLoadPointOptions): Promise<LoadPointResult> {
  const ran = await runPhases(opts);
  return writePoint(opts, ran, outcomeOf(opts, ran, 0));
}

/**
 * One shard of a distributed point: its share of the warm-up, then (at the common start) its
 * share of the schedule. Writes nothing; the outcome goes to shard 0, which merges every shard's
 * with `runLeadShard`.
 */
export async function runLoadShard(
  opts: RunLoadPointOptions,
  shard: ShardSpec,
): Promise<ShardOutcome> {
  return outcomeOf(opts, await runPhases(opts, shard), shard.index);
}

/** What the measured phase's requests became, in send order (epoch-stamped: it can travel). */
function outcomeOf(opts: RunLoadPointOptions, ran: Ran, shard: number): ShardOutcome {
  const count = getTokenizer(tokenizerOf(opts)).count;
  const sent = [...ran.phase.sent].sort((a, b) => a.res.sentHr - b.res.sentHr);
  return {
    shard,
    measured: measureRequests(sent, opts.workload.streaming, count),
    payloads: sent.map((s) => s.payload),
    startEpochNs: hrToEpochNs(ran.phase.startHr),
    ...(ran.phase.targetRate !== undefined ? { targetRate: ran.phase.targetRate } : {}),
    ...(ran.phase.aborted !== undefined ? { aborted: ran.phase.aborted } : {}),
  };
}

/**
 * Shard 0 of a distributed point: its own share, then every other shard's outcome (from
 * `others`) merged into the one export a single process would have written.
 */
export async function runLeadShard(
  opts: RunLoadPointOptions,
  shard: ShardSpec,
  others: () => Promise<ShardOutcome[]>,
): Promise<{ result: LoadPointResult; perShard: number[] }> {
  const ran = await runPhases(opts, shard);
  const parts = [outcomeOf(opts, ran, shard.index), ...(await others())];
  return {
    result: await writePoint(opts, ran, mergeShards(parts)),
    perShard: parts.map((p) => p.measured.records.length),
  };
}

function itemModelsOf(opts: RunLoadPointOptions, workload: Workload): string[] {
  return entryModels(
    workload.items.length,
    opts.models,
    opts.modelSelectionStrategy ?? "round_robin",
    createRng(opts.seed + 3),
  );
}

/** Warm-up then the measured phase, alone or as one shard of N (its requests, slots, start). */
async function runPhases(opts: RunLoadPointOptions, shard?: ShardSpec): Promise<Ran> {
  if (opts.models.length === 0) throw new UserError("at least one model is required (-m/--model)");
  validateLoadPoint(opts.loadPoint);
  const w = opts.workload;
  const sh: ShardOf = shard ?? ONE;
  const workload = workloadOf(opts);
  const lp = opts.loadPoint;
  if (opts.fixedSchedule && !workload.trace)
    throw new UserError("fixed schedule replay needs a timestamp on every row of the input file", {
      hint: 'rows like {"timestamp": 0, "input_length": 100, "output_length": 10}',
    });
  // This shard's slots: its part of the concurrency, or of the open loop's concurrency cap.
  const slots =
    lp.kind === "concurrency"
      ? slotsOf(lp.concurrency, sh)
      : lp.maxConcurrency === undefined
        ? undefined
        : Math.max(1, slotsOf(lp.maxConcurrency, sh));
  if (lp.kind === "concurrency" && slots! < 1)
    throw new UserError(
      `concurrency ${lp.concurrency} cannot be split over ${sh.count} load generators`,
      { hint: "runner.parallelism must not exceed the smallest concurrency of the load points" },
    );
  const rng = createRng(opts.seed + 1);
  const scheduleRng = createRng(opts.seed + 2);
  const itemModels = itemModelsOf(opts, workload);
  // Sessions go to shards whole (a turn waits on its session's previous answer).
  const makeSource = (s: ShardOf): Source =>
    workload.sessions
      ? sessionSource(workload.sessions.filter((_, i) => ownsRequest(s, i)))
      : workload.trace
        ? traceSource(workload.items, s)
        : poolSource(workload.items, itemModels, s);
  const capacity = makeSource(ONE).capacity;
  const timeBoxed = opts.durationMs !== undefined && w.requestCount === undefined;
  const count = Math.min(
    timeBoxed
      ? lp.kind === "request-rate" && !workload.trace
        ? Math.max(1, Math.ceil((lp.requestRate * opts.durationMs!) / 1000))
        : Number.POSITIVE_INFINITY
      : (w.requestCount ??
          (Number.isFinite(capacity)
            ? capacity
            : defaultRequestCount(
                lp.kind === "concurrency"
                  ? { concurrency: lp.concurrency }
                  : { requestRate: lp.requestRate },
              ))),
    capacity,
  );
  // A shard's share: all of its own sessions' turns when the point takes every turn.
  const shareOfCount = (n: number) =>
    workload.sessions && n >= capacity ? makeSource(sh).capacity : shareOf(n, sh);
  // The gate compares with the rate of the schedule actually drawn or recorded (a Poisson draw
  // of n arrivals deviates from the nominal rate by chance, which is not the generator's fault).
  // Every shard draws the whole schedule and keeps its own arrivals, so all share one schedule.
  const modeFor = (n: number): Mode => {
    if (lp.kind === "concurrency") return { kind: "closed", concurrency: slots! };
    const offsetsNs = workload.trace
      ? traceOffsetsNs(workload.items.slice(0, n).map((i) => i.atMs ?? 0))
      : arrivalOffsetsNs(n, lp.requestRate, lp.distribution, scheduleRng, lp.burstiness ?? 1);
    return {
      kind: "open",
      offsetsNs: ownedOf(offsetsNs, sh),
      maxConcurrency: slots,
      targetRate: achievedRate(offsetsNs) ?? lp.requestRate,
    };
  };
  const endpointType = w.endpointType;
  const path = `/${(opts.endpoint ?? endpointPath(endpointType)).replace(/^\//, "")}`;
  const client = new HttpClient(normalizeUrl(opts.url), {
    connections: slots,
    requestTimeoutMs: opts.requestTimeoutMs ?? 600_000,
  });
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  abort.signal.addEventListener("abort", () => void client.destroy(), { once: true });
  const onOuterAbort = () => abort.abort();
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  if (opts.signal?.aborted) abort.abort();
  const ctx: Ctx = {
    client,
    path,
    opts,
    rng,
    endpointType,
    streaming: w.streaming,
    headers: opts.headers ?? {},
    sessionHeader: opts.sessionHeader ?? "x-session-id",
    abort,
    modelCounter: sh.index,
    modelStride: sh.count,
  };
  let phase: Phase;
  if (lp.kind === "request-rate") await warmPreciseTimer();
  try {
    // Drawn even when this shard's share is none: every shard must consume the schedule's
    // random draws alike, or their measured schedules would differ.
    const warmMode = opts.warmupRequests > 0 ? modeFor(opts.warmupRequests) : undefined;
    const warm = shareOfCount(opts.warmupRequests);
    if (warmMode && warm > 0 && !abort.signal.aborted)
      await runPhase(ctx, makeSource(sh), warmMode, warm, "warm-up", false);
    ctx.modelCounter = sh.index;
    collectGarbage();
    const startAtHr = shard ? epochToMonoNs(await shard.startAt()) : undefined;
    phase = await runPhase(
      ctx,
      makeSource(sh),
      modeFor(count),
      shareOfCount(count),
      loadPointText(lp),
      true,
      opts.durationMs,
      startAtHr,
    );
  } finally {
    opts.signal?.removeEventListener("abort", onOuterAbort);
    await client.destroy();
  }
  return { workload, phase, endpointType, path, itemModels };
}

/** What the sent requests became: GenAI-Perf raw records, per-request metrics and our records. */
export interface MeasuredRequests {
  raws: RawRequest[];
  metrics: RequestMetrics[];
  records: RequestRecord[];
  errorsByKind: Record<string, number>;
  usage: { requests: number; prompt: number; completion: number };
}

/** Pure: the sent requests (in send order) → records and metrics; nothing is dropped. */
export function measureRequests(
  sent: readonly Sent[],
  streaming: boolean,
  count: (t: string) => number,
): MeasuredRequests {
  const islCache = new Map<string, number>();
  const out: MeasuredRequests = {
    raws: [],
    metrics: [],
    records: [],
    errorsByKind: {},
    usage: { requests: 0, prompt: 0, completion: 0 },
  };
  sent.forEach((s, index) => {
    const r = materialize(s.res);
    const ts = r.chunkHr.map(hrToEpochNs);
    const chunks = resultChunks(r);
    const events = streaming ? splitSseEvents(ts, chunks) : undefined;
    const raw: RawRequest = {
      timestamp: hrToEpochNs(r.sentHr),
      payload: s.payload,
      responseTimestamps: events ? events.timestamps : ts.length === 0 ? ts : [ts[ts.length - 1]!],
      responses: events ? events.responses : chunks.length === 0 ? [] : [r.body],
    };
    if (s.d.islTokens !== undefined && !islCache.has(s.payload))
      islCache.set(s.payload, s.d.islTokens);
    let error = r.error;
    let m: RequestMetrics | undefined;
    if (!error) {
      m = requestMetrics(raw, count, islCache);
      if (!m) error = "no non-empty response";
      else {
        const sse = parseResponses(raw.responseTimestamps, raw.responses);
        if (sse.errors.length > 0) {
          error = `stream error: ${sse.errors[0]}`;
          m = undefined;
        }
      }
    }
    const rec: RequestRecord = {
      index,
      model: s.model,
      status: error ? "error" : "ok",
      http_status: r.status,
      intended_ns: hrToEpochNs(s.intendedHr),
      eligible_ns: hrToEpochNs(s.eligibleHr),
      sent_ns: hrToEpochNs(r.sentHr),
      end_ns: hrToEpochNs(r.endHr),
      lag_ns: Math.max(0, Number(r.sentHr - s.eligibleHr)),
      schedule_delay_ns: Number(r.sentHr - s.intendedHr),
      chunks: r.chunkEnds.length,
    };
    if (s.sessionId) rec.session_id = s.sessionId;
    if (r.backend) rec.backend = r.backend;
    if (error) {
      rec.error = error;
      const kind = r.status ? `HTTP ${r.status}` : error.split(":")[0]!;
      out.errorsByKind[kind] = (out.errorsByKind[kind] ?? 0) + 1;
    }
    if (m) {
      out.raws.push(raw);
      out.metrics.push(m);
      rec.ttft_ns = m.ttftNs;
      rec.latency_ns = m.latencyNs;
      rec.isl_tokens = m.isl;
      rec.osl_tokens = m.osl;
      if (m.usage) {
        out.usage.requests++;
        if (m.usage.promptTokens !== undefined) {
          rec.usage_prompt_tokens = m.usage.promptTokens;
          out.usage.prompt += m.usage.promptTokens;
        }
        if (m.usage.completionTokens !== undefined) {
          rec.usage_completion_tokens = m.usage.completionTokens;
          out.usage.completion += m.usage.completionTokens;
        }
      }
    }
    out.records.push(rec);
  });
  return out;
}

/**
 * Models that got no successful request at this point: a dead model makes the point INVALID (its
 * latencies would otherwise vanish from a comparison that looks fine).
 */
export function deadModels(models: readonly string[], records: readonly RequestRecord[]): string[] {
  return models
    .filter((m) => records.some((r) => r.model === m))
    .filter((m) => !records.some((r) => r.model === m && r.status === "ok"))
    .map((m) => {
      const failed = records.filter((r) => r.model === m).length;
      return `model ${m}: no successful request (${failed} failed)`;
    });
}

/** The GenAI-Perf run folder name of this point (trace replays are a fixed schedule). */
function artifactFolder(
  opts: RunLoadPointOptions,
  workload: Workload,
  endpointType: "chat" | "completions",
  exp: ExperimentMode,
): string {
  if (opts.runFolder) return opts.runFolder;
  const name = runFolderName(opts.models, endpointType, exp);
  return workload.trace && opts.loadPoint.kind === "request-rate"
    ? name.replace(/request_rate[^-]*$/, "fixed_schedule")
    : name;
}

/** The request bodies of inputs.json: as sent for sessions and traces, else one per item. */
function inputBodies(
  opts: RunLoadPointOptions,
  workload: Workload,
  payloads: readonly string[],
  endpointType: "chat" | "completions",
  itemModels: readonly string[],
): unknown[] {
  const w = opts.workload;
  if (workload.sessions || workload.trace) return payloads.map((p) => JSON.parse(p) as unknown);
  return workload.items.map((it, i) =>
    buildBody({
      model: itemModels[i]!,
      messages: it.messages(),
      endpointType,
      streaming: w.streaming,
      maxTokens: it.maxTokens,
      ignoreEos: w.ignoreEos,
      minTokens: w.minTokens,
      serverUsage: opts.serverUsage ?? true,
      extraInputs: opts.extraInputs,
    }),
  );
}

/** The echoed input_config, as genai-perf writes it for the same flags. */
function inputConfigOf(
  opts: RunLoadPointOptions,
  workload: Workload,
  endpointType: "chat" | "completions",
  requestCount: number,
  goodput: GoodputTargets | undefined,
  profileExportFile: string,
): InputConfigArgs {
  const w = opts.workload;
  const lp = opts.loadPoint;
  return {
    models: opts.models,
    modelSelectionStrategy: opts.modelSelectionStrategy ?? "round_robin",
    endpointType,
    endpoint: opts.endpoint,
    streaming: w.streaming,
    url: opts.url,
    concurrency: lp.kind === "concurrency" ? lp.concurrency : undefined,
    requestRate: lp.kind === "request-rate" ? lp.requestRate : undefined,
    requestDistribution: lp.kind === "request-rate" ? lp.distribution : undefined,
    warmupRequestCount: opts.warmupRequests,
    requestCount,
    syntheticInputTokensMean: w.dataset.kind === "synthetic" ? w.dataset.inputTokensMean : 550,
    syntheticInputTokensStddev: w.dataset.kind === "synthetic" ? w.dataset.inputTokensStddev : 0,
    outputTokensMean: w.outputTokensMean,
    outputTokensStddev: w.outputTokensStddev,
    numDatasetEntries:
      w.dataset.kind === "synthetic" ? w.dataset.numDatasetEntries : workload.items.length,
    randomSeed: opts.seed,
    inputFile: "path" in w.dataset ? w.dataset.path : undefined,
    extraInputs: opts.extraInputs ?? {},
    headers: opts.headers ?? {},
    goodput: (goodput ?? {}) as Record<string, number>,
    artifactDirectory: opts.artifactDir,
    profileExportFile,
    generatePlots: opts.generatePlots ?? false,
    tokenizer: tokenizerOf(opts),
    ...opts.inputConfig,
  };
}

/** inferbench's own extras beside the GenAI-Perf export: validity, errors, usage, definitions. */
function extrasOf(
  opts: RunLoadPointOptions,
  workload: Workload,
  path: string,
  measured: MeasuredRequests,
  validity: Validity,
  verdict: {
    valid: boolean;
    exitCode: number;
    errorCount: number;
    errorRate: number;
    aborted?: string;
  },
) {
  const lp = opts.loadPoint;
  const { records, metrics } = measured;
  return {
    tool: INFERBENCH_VERSION,
    emulated: opts.emulated ?? false,
    valid: verdict.valid,
    invalid_reasons: validity.reasons,
    exit_code: verdict.exitCode,
    validity: {
      lag_p99_ms: validity.lagP99Ms,
      lag_threshold_ms: validity.lagThresholdMs,
      target_rate: validity.targetRate ?? null,
      nominal_rate: lp.kind === "request-rate" ? lp.requestRate : null,
      achieved_rate: validity.achievedRate ?? null,
      lag_definition:
        "actual send − max(intended arrival, concurrency slot free, session turn ready)",
    },
    aborted: verdict.aborted ?? null,
    requests: {
      sent: records.length,
      ok: records.length - verdict.errorCount,
      errors: verdict.errorCount,
      error_rate: verdict.errorRate,
      errors_by_kind: measured.errorsByKind,
    },
    server_usage: {
      requests_with_usage: measured.usage.requests,
      prompt_tokens: measured.usage.prompt,
      completion_tokens: measured.usage.completion,
    },
    tokenizer_counts: {
      tokenizer: tokenizerOf(opts),
      input_tokens: metrics.reduce((a, m) => a + m.isl, 0),
      output_tokens: metrics.reduce((a, m) => a + m.osl, 0),
    },
    metric_definitions: {
      inter_token_latency:
        "GenAI-Perf: (request latency − TTFT) / (OSL − 1) per request, ns rounded half-to-even (vLLM calls this TPOT)",
      time_to_first_token: "first response with non-empty text − request sent",
      lag: "actual send − max(intended arrival, concurrency slot free, session turn ready)",
    },
    load_point: lp,
    workload: {
      kind: workload.kind,
      description: workload.description,
      streaming: opts.workload.streaming,
      endpoint: path,
    },
    warmup_requests: opts.warmupRequests,
    seed: opts.seed,
  };
}

/**
 * After the last request (of one process, or of every shard merged): validity, then the artifacts
 * on disk (the only I/O here).
 */
async function writePoint(
  opts: RunLoadPointOptions,
  ran: Omit<Ran, "phase">,
  done: Omit<ShardOutcome, "shard">,
): Promise<LoadPointResult> {
  const lp = opts.loadPoint;
  const { workload, endpointType, path, itemModels } = ran;
  const { measured } = done;
  const { records, metrics, raws } = measured;
  const goodput = opts.goodput ?? sloToGoodput(opts.slo);
  const stats = metrics.length > 0 ? summarize(metrics, goodput) : undefined;
  const validity = judgeValidity({
    lagNs: records.map((r) => r.lag_ns),
    targetRate: done.targetRate,
    sendOffsetsNs: records.map((r) => Number(r.sent_ns - done.startEpochNs)),
    ...(lp.kind === "concurrency" ? { concurrency: lp.concurrency } : {}),
  });
  const errorCount = records.filter((r) => r.status === "error").length;
  const errorRate = records.length > 0 ? errorCount / records.length : 0;
  const aborted = done.aborted;
  if (aborted) validity.reasons.push(`aborted: ${aborted}`);
  if (!stats) validity.reasons.push("no successful request");
  else validity.reasons.push(...deadModels(opts.models, records));
  const valid = validity.reasons.length === 0;
  const exitCode = aborted || !stats ? EXIT.errors : valid ? EXIT.ok : EXIT.invalid;

  const exp: ExperimentMode =
    lp.kind === "concurrency"
      ? { mode: "concurrency", value: lp.concurrency }
      : {
          mode: "request_rate",
          value: workload.trace ? (done.targetRate ?? lp.requestRate) : lp.requestRate,
        };
  const runDir = join(opts.artifactDir, artifactFolder(opts, workload, endpointType, exp));
  const profileExportFile = opts.profileExportFile ?? "profile_export.json";
  const ic = inputConfigOf(
    opts,
    workload,
    endpointType,
    records.length,
    goodput,
    profileExportFile,
  );
  const extras = extrasOf(opts, workload, path, measured, validity, {
    valid,
    exitCode,
    errorCount,
    errorRate,
    ...(aborted ? { aborted } : {}),
  });
  const files = await writeArtifacts({
    dir: runDir,
    profileExportFile,
    inputsBodies: inputBodies(opts, workload, done.payloads, endpointType, itemModels),
    raw: {
      experiment: exp,
      requests: raws,
      windowBoundaries:
        raws.length > 0
          ? [
              extremeBig(
                raws.map((r) => r.timestamp),
                "min",
              ),
              extremeBig(
                metrics.map((m) => m.endNs),
                "max",
              ),
            ]
          : [],
      endpoint: path.replace(/^\//, ""),
      version: INFERBENCH_VERSION,
    },
    stats,
    streaming: opts.workload.streaming,
    inputConfig: inputConfigBlock(ic),
    extras,
    requestRecords: records,
  });
  if (opts.generatePlots && metrics.length > 0) files.push(...(await writePlots(runDir, metrics)));
  return {
    runDir,
    valid,
    invalidReasons: validity.reasons,
    validity,
    aborted,
    stats,
    requestCount: records.length,
    errorCount,
    errorRate,
    lagP99Ms: validity.lagP99Ms,
    targetRate: validity.targetRate,
    achievedRate: validity.achievedRate,
    files,
    exitCode,
  };
}
