/**
 * Hosts several emulated engines in one process (all engines of one plan host): each on its own
 * port, KVCached engines pinned to the same GPU sharing one physical page pool.
 * The local launcher uses `startEngineHost`; `inferbench serve engine-sim` wraps it.
 */
import { createLogger, type Logger } from "../../lib/logger.ts";
import { getTokenizer } from "../../lib/tokenizer.ts";
import type { EnginePlan } from "../../stacks/plan-types.ts";
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT_SEC } from "./body.ts";
import { coreConfigFromProfile, EngineCore } from "./core.ts";
import { BLOCK_SIZE, type KvCacheOptions, PAGE_BYTES, PagePool } from "./kv.ts";
import { monotonicSeconds } from "./loop.ts";
import { type EngineProfile, GIB, getProfile, profileNames, staticKvTokens } from "./profiles.ts";
import { EngineServer, type FaultConfig } from "./server.ts";
import { safeVocab } from "./text.ts";

/** The EnginePlan fields engine-sim reads (an EnginePlan is one). */
export interface EngineSpec {
  name: string;
  host?: string;
  model: string;
  hfPath?: string;
  gpus: number[];
  port: number;
  kvcached: boolean;
  prefixCaching: boolean;
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  gpuMemoryUtilization?: number;
  emulator: { profile: string; startupDelaySec?: number; maxCachedTokens?: number };
}

export interface EngineHostOptions {
  /** Listen address; loopback unless a container needs 0.0.0.0. */
  bindAddress?: string;
  /** Engine name → port (0 = ephemeral) replacing the plan's port. */
  portOverrides?: Record<string, number>;
  seed?: number;
  v0Metrics?: boolean;
  /** Overrides every engine's start-up delay (tests use 0). */
  startupDelaySec?: number;
  faults?: FaultConfig | Record<string, FaultConfig>;
  maxWaiting?: number;
  /** Request body limit in bytes (413 above it); default DEFAULT_MAX_BODY_BYTES. */
  maxBodyBytes?: number;
  /** Seconds a client may take to send its request (408 after); default 60. */
  requestTimeoutSec?: number;
  /** Bounds on each engine's listen() and close() (defaults LISTEN_TIMEOUT_MS, CLOSE_TIMEOUT_MS). */
  listenTimeoutMs?: number;
  closeTimeoutMs?: number;
  /** Overrides the profiles' natural (EOS) output length distribution. */
  naturalOutputLen?: { median: number; sigma: number; cap: number };
  log?: Logger;
  /** Injected monotonic clock, seconds. */
  now?: () => number;
  onCrash?: (engine: string) => void;
}

export interface EngineHost {
  ports: Record<string, number>;
  engines: Record<string, EngineServer>;
  close(): Promise<void>;
}

/** KVCached: fraction of GPU memory the shared pool may map (no --gpu-memory-utilization). */
export const KVCACHED_MEMORY_FRACTION = 0.95;
/** KVCached's KVCACHED_MAX_CACHED_TOKENS default (ENGINE_MODEL.md). */
export const KVCACHED_DEFAULT_MAX_CACHED_TOKENS = 16_000;

function requireProfile(name: string): EngineProfile {
  const p = getProfile(name);
  if (!p)
    throw new Error(`unknown engine-sim profile "${name}" (known: ${profileNames().join(", ")})`);
  return p;
}

function poolKey(e: EngineSpec): string {
  return `${e.host ?? "local"}/gpu${e.gpus[0] ?? 0}`;
}

export interface KvLayout {
  kv: KvCacheOptions;
  maxModelLen: number;
  warnings: string[];
}

/**
 * KV memory per engine. Static engines get (util × GPU − weights − overhead) each; KVCached
 * engines on one GPU share (0.95 × GPU − Σ weights − Σ overhead) as 2 MiB pages, and each may grow
 * to the whole pool (its virtual cap).
 */
export function layoutKv(engines: readonly EngineSpec[]): Map<string, KvLayout> {
  const out = new Map<string, KvLayout>();
  const groups = new Map<string, EngineSpec[]>();
  for (const e of engines) {
    if (!e.kvcached) continue;
    const k = poolKey(e);
    groups.set(k, [...(groups.get(k) ?? []), e]);
  }
  const pools = new Map<string, { pool: PagePool; bytes: number }>();
  for (const [k, list] of groups) {
    const profiles = list.map((e) => requireProfile(e.emulator.profile));
    const gpuGiB = profiles[0]!.gpuMemoryGiB;
    const reserved = profiles.reduce((s, p) => s + p.weightsGiB + p.overheadGiB, 0);
    const bytes = Math.max(0, (gpuGiB * KVCACHED_MEMORY_FRACTION - reserved) * GIB);
    pools.set(k, { pool: new PagePool(Math.floor(bytes / PAGE_BYTES)), bytes });
  }
  // Static engines sharing a GPU each reserve their own slice; flag slices that cannot all fit.
  const staticShare = new Map<string, { util: number; names: string[] }>();
  for (const e of engines) {
    if (e.kvcached) continue;
    const k = poolKey(e);
    const cur = staticShare.get(k) ?? { util: 0, names: [] };
    cur.util += e.gpuMemoryUtilization ?? requireProfile(e.emulator.profile).gpuMemoryUtilization;
    cur.names.push(e.name);
    staticShare.set(k, cur);
  }
  for (const e of engines) {
    const p = requireProfile(e.emulator.profile);
    const blockBytes = p.kvBytesPerToken * BLOCK_SIZE;
    const warnings: string[] = [];
    const share = e.kvcached ? undefined : staticShare.get(poolKey(e));
    if (share && share.util > 1 && share.names[0] === e.name)
      warnings.push(
        `engines ${share.names.join(", ")} share ${poolKey(e)} with gpu_memory_utilization summing to ${share.util.toFixed(2)} > 1: real vLLM would fail to start the later ones; emulated anyway`,
      );
    let kv: KvCacheOptions;
    if (e.kvcached) {
      const { pool, bytes } = pools.get(poolKey(e))!;
      kv = {
        numBlocks: Math.floor(bytes / blockBytes),
        blockBytes,
        prefixCaching: e.prefixCaching && (e.emulator.maxCachedTokens ?? 1) > 0,
        // Cached blocks pin physical pages the neighbours could use, hence KVCached's cap.
        maxCachedTokens: e.emulator.maxCachedTokens ?? KVCACHED_DEFAULT_MAX_CACHED_TOKENS,
        pool,
      };
    } else {
      kv = {
        numBlocks: Math.floor(staticKvTokens(p, e.gpuMemoryUtilization) / BLOCK_SIZE),
        blockBytes,
        prefixCaching: e.prefixCaching,
      };
    }
    let maxModelLen = e.maxModelLen ?? p.maxModelLen;
    const kvTokens = kv.numBlocks * BLOCK_SIZE;
    if (kvTokens < BLOCK_SIZE * 2)
      throw new Error(`engine ${e.name}: no GPU memory left for the KV cache (profile ${p.name})`);
    if (maxModelLen > kvTokens) {
      warnings.push(
        `engine ${e.name}: max_model_len ${maxModelLen} exceeds its KV capacity (${kvTokens} tokens); clamped (vLLM would refuse to start)`,
      );
      maxModelLen = kvTokens;
    }
    out.set(e.name, { kv, maxModelLen, warnings });
  }
  return out;
}

function faultsFor(faults: EngineHostOptions["faults"], name: string): FaultConfig | undefined {
  if (!faults) return undefined;
  const keys = ["errorRates", "stallProbability", "stallSec", "crashAfterRequests"];
  if (Object.keys(faults).some((k) => keys.includes(k))) return faults as FaultConfig;
  return (faults as Record<string, FaultConfig>)[name];
}

export async function startEngineHost(
  engines: readonly (EngineSpec | EnginePlan)[],
  opts: EngineHostOptions = {},
): Promise<EngineHost> {
  if (engines.length === 0) throw new Error("no engines to host");
  const log = opts.log ?? createLogger("engine-sim");
  const now = opts.now ?? monotonicSeconds;
  const layouts = layoutKv(engines);
  const servers: Record<string, EngineServer> = {};
  const ports: Record<string, number> = {};
  const byPool = new Map<unknown, EngineServer[]>();
  const started: EngineServer[] = [];
  try {
    for (const e of engines) {
      const p = requireProfile(e.emulator.profile);
      const layout = layouts.get(e.name)!;
      for (const w of layout.warnings) log.warn(w);
      const core = new EngineCore(
        coreConfigFromProfile(p, layout.kv, {
          model: e.model,
          maxNumSeqs: e.maxNumSeqs ?? p.maxNumSeqs,
          maxNumBatchedTokens: e.maxNumBatchedTokens ?? p.maxNumBatchedTokens,
        }),
      );
      const tokenizer = getTokenizer(p.tokenizer);
      const srv = new EngineServer({
        name: e.name,
        model: e.model,
        hfPath: e.hfPath ?? p.hfPath,
        maxModelLen: layout.maxModelLen,
        core,
        tokenizer,
        vocab: safeVocab(tokenizer),
        natural: opts.naturalOutputLen ?? p.outputLen,
        seed: opts.seed ?? 0,
        startupDelaySec: opts.startupDelaySec ?? e.emulator.startupDelaySec ?? 0,
        v0Metrics: opts.v0Metrics ?? false,
        maxWaiting: opts.maxWaiting ?? 10_000,
        maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        requestTimeoutSec: opts.requestTimeoutSec ?? DEFAULT_REQUEST_TIMEOUT_SEC,
        faults: faultsFor(opts.faults, e.name),
        log: log.child(e.name),
        now,
        onCrash: () => opts.onCrash?.(e.name),
        ...(opts.listenTimeoutMs !== undefined ? { listenTimeoutMs: opts.listenTimeoutMs } : {}),
        ...(opts.closeTimeoutMs !== undefined ? { closeTimeoutMs: opts.closeTimeoutMs } : {}),
      });
      const port = opts.portOverrides?.[e.name] ?? e.port;
      ports[e.name] = await srv.listen(port, opts.bindAddress ?? "127.0.0.1");
      started.push(srv);
      servers[e.name] = srv;
      if (layout.kv.pool) byPool.set(layout.kv.pool, [...(byPool.get(layout.kv.pool) ?? []), srv]);
      log.info(
        `engine ${e.name} (${e.model}, profile ${p.name}${e.kvcached ? ", kvcached" : ""}) on port ${ports[e.name]}: ${core.maxTokensInKv} KV tokens, max_model_len ${layout.maxModelLen}`,
      );
    }
  } catch (err) {
    await Promise.all(started.map((s) => s.close()));
    throw err;
  }
  for (const group of byPool.values())
    for (const s of group) s.loop.neighbours = group.filter((o) => o !== s).map((o) => o.loop);
  return {
    ports,
    engines: servers,
    close: async () => {
      await Promise.all(Object.values(servers).map((s) => s.close()));
    },
  };
}
