/**
 * The pure engine model: a vLLM V1-style step scheduler over a KV cache, driven by an injected
 * clock. `step(now)` plans one forward pass, advances the model state and returns the step's
 * duration and the tokens it produces (delivered at `now + duration`). No timers, no I/O, no
 * randomness: tests step it with a fake clock; the host drives it from a monotonic timer.
 */
import { BLOCK_SIZE, type Block, hashBlock, KvCache, type KvCacheOptions, seedHash } from "./kv.ts";
import type { EngineProfile } from "./profiles.ts";

export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
  160, 640, 2560,
];
export const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
export const REQUEST_BUCKETS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];

export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array(buckets.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    // Non-cumulative per bucket; the writer accumulates.
    for (let i = 0; i < this.buckets.length; i++) {
      if (v <= this.buckets[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

export type FinishReason = "stop" | "length" | "abort";

export interface EngineCounters {
  promptTokens: number;
  generationTokens: number;
  success: Record<FinishReason, number>;
  preemptions: number;
  prefixQueries: number;
  prefixHits: number;
  steps: number;
  busyTime: number;
  ttft: Histogram;
  itl: Histogram;
  e2e: Histogram;
  queue: Histogram;
  prefill: Histogram;
  decode: Histogram;
}

/** The scheduler's limits and step-time constants (as a profile documents them), per engine. */
export interface EngineCoreConfig
  extends Pick<
    EngineProfile,
    | "maxNumSeqs"
    | "maxNumBatchedTokens"
    | "beta0"
    | "beta1"
    | "beta2"
    | "kappa"
    | "requestOverhead"
    | "pageMapCost"
  > {
  model: string;
  kv: KvCacheOptions;
}

export function coreConfigFromProfile(
  p: EngineProfile,
  kv: KvCacheOptions,
  over: Partial<Pick<EngineCoreConfig, "model" | "maxNumSeqs" | "maxNumBatchedTokens">> = {},
): EngineCoreConfig {
  return {
    model: over.model ?? p.defaultModel,
    maxNumSeqs: over.maxNumSeqs ?? p.maxNumSeqs,
    maxNumBatchedTokens: over.maxNumBatchedTokens ?? p.maxNumBatchedTokens,
    beta0: p.beta0,
    beta1: p.beta1,
    beta2: p.beta2,
    kappa: p.kappa,
    requestOverhead: p.requestOverhead,
    pageMapCost: p.pageMapCost,
    kv,
  };
}

export interface CoreRequest {
  id: string;
  promptTokens: readonly number[];
  /** Number of output tokens this request will produce before finishing. */
  outputLen: number;
  /** Output token id at an index (for hashing generated blocks); absent ids hash as 0. */
  outputToken?: (index: number) => number;
  finishReason: "stop" | "length";
  /** Arrival time on the core's clock, seconds. */
  arrival: number;
}

interface Seq {
  req: CoreRequest;
  readyAt: number;
  numComputed: number;
  numOutput: number;
  blocks: Block[];
  hashes: number[];
  state: "pending" | "waiting" | "running" | "done";
  scheduledAt: number | undefined;
  firstTokenAt: number | undefined;
  lastTokenAt: number;
}

export interface TokenEvent {
  id: string;
  /** 0-based index of the output token produced. */
  index: number;
  finish?: FinishReason;
}

export interface StepResult {
  start: number;
  duration: number;
  end: number;
  prefillTokens: number;
  decodeTokens: number;
  contextTokens: number;
  batchSize: number;
  preempted: string[];
  events: TokenEvent[];
}

export class EngineCore {
  readonly kv: KvCache;
  readonly counters: EngineCounters;
  private readonly seqs = new Map<string, Seq>();
  private pending: Seq[] = [];
  private waiting: Seq[] = [];
  private running: Seq[] = [];
  private readonly rootHash: number;

  constructor(readonly cfg: EngineCoreConfig) {
    this.kv = new KvCache(cfg.kv);
    this.rootHash = seedHash(cfg.model);
    this.counters = {
      promptTokens: 0,
      generationTokens: 0,
      success: { stop: 0, length: 0, abort: 0 },
      preemptions: 0,
      prefixQueries: 0,
      prefixHits: 0,
      steps: 0,
      busyTime: 0,
      ttft: new Histogram(TTFT_BUCKETS),
      itl: new Histogram(ITL_BUCKETS),
      e2e: new Histogram(REQUEST_BUCKETS),
      queue: new Histogram(REQUEST_BUCKETS),
      prefill: new Histogram(REQUEST_BUCKETS),
      decode: new Histogram(REQUEST_BUCKETS),
    };
  }

  get numRunning(): number {
    return this.running.length;
  }
  /** Waiting includes requests still in API-server preprocessing (as vLLM's queue would). */
  get numWaiting(): number {
    return this.waiting.length + this.pending.length;
  }
  get kvUsage(): number {
    return this.kv.usage();
  }
  get maxTokensInKv(): number {
    return this.kv.numBlocks * BLOCK_SIZE;
  }

  addRequest(req: CoreRequest): void {
    if (this.seqs.has(req.id)) throw new Error(`duplicate request id ${req.id}`);
    if (req.outputLen < 1) throw new Error("outputLen must be >= 1");
    const seq: Seq = {
      req,
      readyAt: req.arrival + this.cfg.requestOverhead,
      numComputed: 0,
      numOutput: 0,
      blocks: [],
      hashes: [],
      state: "pending",
      scheduledAt: undefined,
      firstTokenAt: undefined,
      lastTokenAt: req.arrival,
    };
    this.seqs.set(req.id, seq);
    this.pending.push(seq);
  }

  /** Client went away: free everything at once. */
  abort(id: string): boolean {
    const seq = this.seqs.get(id);
    if (!seq || seq.state === "done") return false;
    const remove = (list: Seq[]) => {
      const i = list.indexOf(seq);
      if (i >= 0) list.splice(i, 1);
    };
    remove(this.pending);
    remove(this.waiting);
    remove(this.running);
    this.kv.release(seq.blocks);
    seq.blocks = [];
    seq.state = "done";
    this.seqs.delete(id);
    this.counters.success.abort++;
    return true;
  }

  hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0 || this.pending.length > 0;
  }

  /** When the next step could do something: `now` if runnable work exists, else the next arrival. */
  nextWake(now: number): number | undefined {
    if (this.running.length > 0 || this.waiting.length > 0) return now;
    let min: number | undefined;
    for (const s of this.pending) if (min === undefined || s.readyAt < min) min = s.readyAt;
    return min === undefined ? undefined : Math.max(now, min);
  }

  private tokenAt(seq: Seq, i: number): number {
    const p = seq.req.promptTokens;
    return i < p.length ? p[i]! : (seq.req.outputToken?.(i - p.length) ?? 0);
  }

  private totalTokens(seq: Seq): number {
    return seq.req.promptTokens.length + seq.numOutput;
  }

  /** Chained hashes of every full block of the sequence's known tokens. */
  private ensureHashes(seq: Seq): void {
    const full = Math.floor(this.totalTokens(seq) / BLOCK_SIZE);
    const p = seq.req.promptTokens;
    while (seq.hashes.length < full) {
      const i = seq.hashes.length;
      const parent = i === 0 ? this.rootHash : seq.hashes[i - 1]!;
      const start = i * BLOCK_SIZE;
      if (start + BLOCK_SIZE <= p.length) seq.hashes.push(hashBlock(parent, p, start));
      else {
        const toks: number[] = [];
        for (let k = 0; k < BLOCK_SIZE; k++) toks.push(this.tokenAt(seq, start + k));
        seq.hashes.push(hashBlock(parent, toks, 0));
      }
    }
  }

  /** Grow the block table to hold `tokens` tokens. */
  private growTo(seq: Seq, tokens: number): boolean {
    const need = Math.ceil(tokens / BLOCK_SIZE) - seq.blocks.length;
    if (need <= 0) return true;
    const got = this.kv.allocate(need);
    if (!got) return false;
    for (const b of got) seq.blocks.push(b);
    return true;
  }

  private preempt(seq: Seq): void {
    this.kv.release(seq.blocks);
    seq.blocks = [];
    seq.numComputed = 0;
    seq.state = "waiting";
    this.waiting.unshift(seq);
    this.counters.preemptions++;
  }

  /** Plan and run one step starting at `now`; undefined when there is nothing to run. */
  step(now: number): StepResult | undefined {
    // Requests whose preprocessing is done join the waiting queue in arrival order.
    if (this.pending.length > 0) {
      const still: Seq[] = [];
      for (const s of this.pending) {
        if (s.readyAt <= now) {
          s.state = "waiting";
          this.waiting.push(s);
        } else still.push(s);
      }
      this.pending = still;
    }
    if (this.running.length === 0 && this.waiting.length === 0) return undefined;

    const cfg = this.cfg;
    let budget = cfg.maxNumBatchedTokens;
    const scheduled: { seq: Seq; n: number }[] = [];
    const preempted: string[] = [];
    let P = 0;
    let D = 0;
    let C = 0;

    // 1. Running requests: decodes and continuing prefill chunks, oldest first.
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i]!;
      const n = Math.min(this.totalTokens(seq) - seq.numComputed, budget);
      if (n <= 0) continue;
      let selfPreempted = false;
      while (!this.growTo(seq, seq.numComputed + n)) {
        const victim = this.running.pop()!;
        this.preempt(victim);
        preempted.push(victim.req.id);
        if (victim === seq) {
          selfPreempted = true;
          break;
        }
      }
      if (selfPreempted) break;
      scheduled.push({ seq, n });
      budget -= n;
      const isDecode =
        n === 1 && seq.numComputed === this.totalTokens(seq) - 1 && seq.numOutput > 0;
      if (isDecode) {
        D += 1;
        C += seq.numComputed + 1;
      } else P += n;
    }

    // 2. Admit waiting requests FCFS while budget, sequence cap and KV allow (not after preemption).
    if (preempted.length === 0) {
      while (this.waiting.length > 0 && budget > 0 && this.running.length < cfg.maxNumSeqs) {
        const seq = this.waiting[0]!;
        const total = this.totalTokens(seq);
        let hits: Block[] = [];
        if (this.kv.cachingEnabled) {
          this.ensureHashes(seq);
          hits = this.kv.lookup(seq.hashes);
          // At least one token is always recomputed (to produce logits).
          if (hits.length * BLOCK_SIZE >= total) hits = hits.slice(0, hits.length - 1);
        }
        const cachedTokens = hits.length * BLOCK_SIZE;
        const n = Math.min(total - cachedTokens, budget);
        this.kv.touch(hits);
        const before = seq.blocks.length;
        for (const b of hits) seq.blocks.push(b);
        if (!this.growTo(seq, cachedTokens + n)) {
          const taken = seq.blocks.splice(before);
          this.kv.release(taken);
          break;
        }
        this.waiting.shift();
        seq.state = "running";
        seq.numComputed = cachedTokens;
        this.running.push(seq);
        if (seq.scheduledAt === undefined) {
          seq.scheduledAt = now;
          this.counters.queue.observe(now - seq.req.arrival);
        }
        this.counters.prefixQueries += total;
        this.counters.prefixHits += cachedTokens;
        scheduled.push({ seq, n });
        budget -= n;
        P += n;
      }
    }

    if (scheduled.length === 0) {
      // Nothing fits (KVCached neighbours hold the memory): idle until something frees.
      return undefined;
    }

    const pageOps = this.kv.pageOps;
    this.kv.pageOps = 0;
    const duration =
      cfg.beta0 + cfg.beta1 * P + cfg.beta2 * D + cfg.kappa * C + cfg.pageMapCost * pageOps;
    const end = now + duration;
    this.counters.steps++;
    this.counters.busyTime += duration;

    const events: TokenEvent[] = [];
    for (const { seq, n } of scheduled) {
      seq.numComputed += n;
      if (this.kv.cachingEnabled) {
        this.ensureHashes(seq);
        const full = Math.min(Math.floor(seq.numComputed / BLOCK_SIZE), seq.blocks.length);
        for (let b = 0; b < full; b++) this.kv.register(seq.blocks[b]!, seq.hashes[b]!);
      }
      if (seq.numComputed < this.totalTokens(seq)) continue; // prefill chunk not done yet
      seq.numOutput++;
      this.counters.generationTokens++;
      const ev: TokenEvent = { id: seq.req.id, index: seq.numOutput - 1 };
      if (seq.firstTokenAt === undefined) {
        seq.firstTokenAt = end;
        // Counted once the prompt is prefilled (as vLLM does), not on arrival.
        this.counters.promptTokens += seq.req.promptTokens.length;
        this.counters.ttft.observe(end - seq.req.arrival);
        this.counters.prefill.observe(end - (seq.scheduledAt ?? now));
      } else {
        this.counters.itl.observe(end - seq.lastTokenAt);
      }
      seq.lastTokenAt = end;
      if (seq.numOutput >= seq.req.outputLen) {
        ev.finish = seq.req.finishReason;
        this.finish(seq, end);
      }
      events.push(ev);
    }

    return {
      start: now,
      duration,
      end,
      prefillTokens: P,
      decodeTokens: D,
      contextTokens: C,
      batchSize: scheduled.length,
      preempted,
      events,
    };
  }

  private finish(seq: Seq, end: number): void {
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    this.kv.release(seq.blocks);
    seq.blocks = [];
    seq.state = "done";
    this.seqs.delete(seq.req.id);
    const c = this.counters;
    c.success[seq.req.finishReason]++;
    c.e2e.observe(end - seq.req.arrival);
    c.decode.observe(end - (seq.firstTokenAt ?? end));
  }

  /** Evict every cached prefix block (vLLM /reset_prefix_cache). */
  resetPrefixCache(): void {
    this.kv.reset();
  }
}
