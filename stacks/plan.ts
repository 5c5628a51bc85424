/**
 * plan(config) → StackPlan: pure and deterministic. All placement, port, flag and environment
 * decisions live here so that every renderer (compose, kube, local launcher) deploys the same
 * thing, and so that a baseline and a managed plan of one stack differ only where the arm does.
 */
import { UserError } from "../lib/errors.ts";
import {
  estimateWeightsGiB,
  GCP_MACHINES,
  GPU_SPECS,
  hourlyPrice,
  PRICE_SOURCE,
} from "./catalog.ts";
import { type ConfigPath, formatPath, suggestion } from "./config.ts";
import { orderLoadPoints } from "./load-point.ts";
import {
  type CostEstimate,
  type EnginePlan,
  type HostPlan,
  type LoadPoint,
  PLAN_SCHEMA_VERSION,
  type RouterPlan,
  type RunnerPlan,
  type StackPlan,
} from "./plan-types.ts";
import {
  builtKvcachedImage,
  engineImagePinned,
  type ModelConfig,
  type StackConfig,
} from "./schema.ts";
import { checkExtraArgs } from "./vllm-args.ts";

/** One reason a plan is impossible, at the config key it is about. */
export interface PlanProblem {
  path: ConfigPath;
  message: string;
}

/** Where a config path is in its source: `file:line:col`, or `--set` when an override set it. */
export type Locate = (path: ConfigPath) => string | undefined;

export class PlanError extends UserError {
  /** The messages with their config paths (`models[0].profile: ...`). */
  readonly reasons: string[];
  constructor(
    readonly stackName: string,
    readonly problems: PlanProblem[],
    locate?: Locate,
  ) {
    const lines = problems.map((p) => {
      const where = locate?.(p.path);
      return `${where ? `${where}: ` : ""}${formatPath(p.path)}: ${p.message}`;
    });
    super(`stack "${stackName}" cannot be planned:\n${lines.map((r) => `  ${r}`).join("\n")}`, {
      exitCode: 2,
      hint: "Fix the stack file (or the --set value) at the position shown and run again.",
    });
    this.reasons = lines;
    this.name = "PlanError";
  }

  /** The same problems with their source positions. */
  located(locate: Locate): PlanError {
    return new PlanError(this.stackName, this.problems, locate);
  }
}

/** The longest request a workload sends (prompt tokens + the max_tokens it asks for). */
export interface RequestExtent {
  promptTokens: number;
  /** max_tokens of that request; undefined when the workload sends none (the engine decides). */
  outputTokens?: number | undefined;
  /** Where the numbers come from, e.g. `workload.dataset.inputTokensMean 550` or `data.jsonl:17`. */
  source: string;
}

export interface PlanOptions {
  /** engine-sim profile names; when given, unknown profiles are refused. */
  knownProfiles?: readonly string[];
  /**
   * The workload's longest request, measured from its files or its generator (cli/plan-stack.ts);
   * without it, plan() derives it from the config where that is exact.
   */
  workloadExtent?: RequestExtent;
}

/** KV headroom every engine needs beyond its weights (activations, CUDA graphs, a minimum of KV). */
export const MIN_KV_HEADROOM_GIB = 2;
/** KVCached engines may map up to this fraction of a GPU (no fixed slice). */
export const KVCACHED_MAX_GPU_FRACTION = 0.95;

/** DNS-1035 label from a served model name: engines become compose services and k8s Services. */
export function engineName(model: string, replica: number): string {
  const base = model.replace(/[^a-z0-9-]/g, "-").replace(/-+/g, "-");
  const label = /^[a-z]/.test(base) ? base : `m-${base}`;
  return `${label}-${replica}`.slice(0, 63).replace(/-+$/, "");
}

/** The router policy of the planned arm: a per-arm setting, one for both arms, or the arm default. */
export function routerPolicyFor(config: StackConfig): RouterPlan["policy"] {
  const p = config.router.policy;
  if (typeof p === "string") return p;
  return p?.[config.mode] ?? armDefaultPolicy(config.mode);
}

export function armDefaultPolicy(mode: StackConfig["mode"]): RouterPlan["policy"] {
  return mode === "baseline" ? "round-robin" : "least-busy";
}

interface HostShape {
  host: HostPlan;
  /** Total GPUs the machine has (for the "more GPUs than the host has" check). */
  capacity: number;
}

export function hostShape(config: StackConfig, reasons: PlanProblem[]): HostShape {
  const gpuType = config.gpus.type;
  let capacity = config.gpus.count;
  let name = "local";
  if (config.target === "gcp-vm" || config.target === "gke") {
    const machineType =
      config.target === "gcp-vm" ? config.gcp.machineType : config.gke.machineType;
    const machine = GCP_MACHINES[machineType];
    name = config.target === "gcp-vm" ? "vm" : "gke-node";
    if (!machine) {
      reasons.push({
        path: [config.target === "gcp-vm" ? "gcp" : "gke", "machineType"],
        message: `"${machineType}" is not a known GPU machine type${suggestion(machineType, Object.keys(GCP_MACHINES))}; known: ${Object.keys(GCP_MACHINES).join(", ")}`,
      });
    } else {
      capacity = machine.gpus;
      if (machine.gpuType !== gpuType) {
        reasons.push({
          path: ["gpus", "type"],
          message: `is ${gpuType} but ${machineType} carries ${machine.gpuType}; set gpus.type: ${machine.gpuType}`,
        });
      }
    }
  } else if (config.target === "ssh") {
    name = "host";
  } else if (config.target === "kubeconfig") {
    name = "node";
    capacity = config.kubeconfig.gpusPerNode;
  }
  const gpuIds = config.gpus.ids ?? Array.from({ length: config.gpus.count }, (_, i) => i);
  if (config.gpus.ids && config.gpus.ids.length !== config.gpus.count) {
    reasons.push({
      path: ["gpus", "ids"],
      message: `lists ${config.gpus.ids.length} GPUs but gpus.count is ${config.gpus.count}`,
    });
  }
  if (new Set(gpuIds).size !== gpuIds.length)
    reasons.push({ path: ["gpus", "ids"], message: `has duplicates: ${gpuIds.join(",")}` });
  const outOfRange = gpuIds.filter((id) => id >= capacity);
  if (gpuIds.length > capacity) {
    reasons.push({
      path: ["gpus", "count"],
      message: `the plan uses ${gpuIds.length} GPUs but the host has ${capacity}`,
    });
  } else if (outOfRange.length > 0) {
    reasons.push({
      path: ["gpus", "ids"],
      message: `GPU ids ${outOfRange.join(",")} do not exist on a host with ${capacity} GPUs (ids 0-${capacity - 1})`,
    });
  }
  return { host: { name, gpuType, gpuMemoryGiB: GPU_SPECS[gpuType].memoryGiB, gpuIds }, capacity };
}

interface Slot {
  model: ModelConfig;
  replica: number;
}

/** Replica-major order (r0 of every model, then r1...) so that a model's replicas spread out when packed. */
function slots(models: readonly ModelConfig[]): Slot[] {
  const out: Slot[] = [];
  const maxReplicas = Math.max(...models.map((m) => m.replicas));
  for (let r = 0; r < maxReplicas; r++)
    for (const m of models) if (r < m.replicas) out.push({ model: m, replica: r });
  return out;
}

/** Dedicated order: model by model, so each model's replicas sit on neighbouring GPUs (the reference layout). */
function dedicatedSlots(models: readonly ModelConfig[]): Slot[] {
  return models.flatMap((m) =>
    Array.from({ length: m.replicas }, (_, r) => ({ model: m, replica: r })),
  );
}

export interface Placement {
  slot: Slot;
  gpus: number[];
}

/**
 * Assigns GPU sets. Dedicated: consecutive, disjoint sets of `gpusPerReplica` GPUs. Packed: each
 * engine goes to the aligned GPU set with the least weight memory committed so far.
 */
export function placeEngines(
  config: StackConfig,
  gpuIds: readonly number[],
  reasons: PlanProblem[],
): Placement[] {
  if (config.placement === "dedicated") {
    const needed = config.models.reduce((n, m) => n + m.replicas * m.gpusPerReplica, 0);
    if (needed > gpuIds.length) {
      reasons.push({
        path: ["gpus", "count"],
        message: `dedicated placement needs ${needed} GPUs (${config.models.map((m) => `${m.name}: ${m.replicas}×${m.gpusPerReplica}`).join(", ")}) but the plan has ${gpuIds.length} (gpus.count); add GPUs, lower replicas, or use placement: packed`,
      });
      return [];
    }
    let next = 0;
    return dedicatedSlots(config.models).map((slot) => {
      const gpus = gpuIds.slice(next, next + slot.model.gpusPerReplica);
      next += slot.model.gpusPerReplica;
      return { slot, gpus };
    });
  }
  const committed = new Map<number, number>(gpuIds.map((id) => [id, 0]));
  const out: Placement[] = [];
  for (const slot of slots(config.models)) {
    const tp = slot.model.gpusPerReplica;
    if (tp > gpuIds.length) {
      reasons.push({
        path: ["models", config.models.indexOf(slot.model), "gpusPerReplica"],
        message: `${slot.model.name} needs ${tp} GPUs per replica but the plan has ${gpuIds.length}`,
      });
      continue;
    }
    let best: number[] | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let start = 0; start + tp <= gpuIds.length; start += tp) {
      const set = gpuIds.slice(start, start + tp);
      const load = Math.max(...set.map((id) => committed.get(id) ?? 0));
      if (load < bestLoad) {
        bestLoad = load;
        best = set;
      }
    }
    if (!best) continue;
    const perGpu = (estimateWeightsGiB(slot.model) ?? 0) / tp;
    for (const id of best) committed.set(id, (committed.get(id) ?? 0) + perGpu);
    out.push({ slot, gpus: best });
  }
  return out;
}

/** Per-model checks (profile, extraArgs, weight estimate); returns each model's extra words. */
function checkModels(
  config: StackConfig,
  opts: PlanOptions,
  reasons: PlanProblem[],
  warnings: string[],
): Map<ModelConfig, string[]> {
  const extraWords = new Map<ModelConfig, string[]>();
  for (const [i, m] of config.models.entries()) {
    // The schema requires a profile wherever engines are deployed (every target but endpoint).
    const profile = m.profile!;
    if (opts.knownProfiles && !opts.knownProfiles.includes(profile)) {
      reasons.push({
        path: ["models", i, "profile"],
        message: `"${profile}" is not an engine-sim profile${suggestion(profile, opts.knownProfiles)}; known: ${opts.knownProfiles.join(", ")}`,
      });
    }
    const gpuSuffix = GPU_SPECS[config.gpus.type].profileSuffix;
    if (!profile.endsWith(`@${gpuSuffix}`)) {
      warnings.push(
        `${m.name}: emulator profile ${profile} models a different GPU than gpus.type ${config.gpus.type}`,
      );
    }
    const extra = checkExtraArgs(m.extraArgs);
    extraWords.set(m, extra.words);
    for (const p of extra.problems)
      reasons.push({ path: ["models", i, "extraArgs", p.index], message: p.message });
    if (estimateWeightsGiB(m) === undefined) {
      warnings.push(
        `${m.name}: cannot estimate weight memory from "${m.hfPath}"; set models[].weightsGiB to check that it fits`,
      );
    }
  }

  return extraWords;
}

export function plan(stack: string, config: StackConfig, opts: PlanOptions = {}): StackPlan {
  if (config.target === "endpoint") return endpointArmPlan(stack, config, opts);
  const reasons: PlanProblem[] = [];
  const warnings: string[] = [];
  const { host } = hostShape(config, reasons);
  const kvcached = config.engine.kvcached.enabled ?? config.mode === "managed";
  // KVCached engines run the given image, else the baseline's image + kvcached, built on the host.
  const managedBuild = config.engine.images.managed
    ? undefined
    : { from: config.engine.images.baseline, kvcached: config.engine.kvcached.version };
  const managedImage =
    config.engine.images.managed ?? builtKvcachedImage(managedBuild!.from, managedBuild!.kvcached);
  const placements = placeEngines(config, host.gpuIds, reasons);

  const extraWords = checkModels(config, opts, reasons, warnings);

  // Engines per GPU decide each baseline engine's static memory slice.
  const enginesPerGpu = new Map<number, number>();
  for (const p of placements)
    for (const g of p.gpus) enginesPerGpu.set(g, (enginesPerGpu.get(g) ?? 0) + 1);
  const weightsPerGpu = new Map<number, number>();
  for (const p of placements) {
    for (const g of p.gpus) {
      weightsPerGpu.set(
        g,
        (weightsPerGpu.get(g) ?? 0) + (estimateWeightsGiB(p.slot.model) ?? 0) / p.gpus.length,
      );
    }
  }

  const engines: EnginePlan[] = placements.map((p, index) => {
    const { model, replica } = p.slot;
    const name = engineName(model.name, replica);
    const port = config.engine.basePort + index;
    const sharing = Math.max(...p.gpus.map((g) => enginesPerGpu.get(g) ?? 1));
    const weightsGiB = estimateWeightsGiB(model);
    let gpuMemoryUtilization: number | undefined;
    if (!kvcached) {
      // Vanilla vLLM needs a fixed slice per engine; co-located engines split the budget.
      gpuMemoryUtilization =
        Math.floor((config.engine.gpuMemoryUtilization / sharing) * 1000) / 1000;
      const slice = host.gpuMemoryGiB * gpuMemoryUtilization;
      if (weightsGiB !== undefined && weightsGiB / p.gpus.length + MIN_KV_HEADROOM_GIB > slice) {
        reasons.push({
          path: ["models", config.models.indexOf(model)],
          message: `${name} (${model.hfPath}${model.quantization ? `, ${model.quantization}` : ""}) needs ≈${(weightsGiB / p.gpus.length).toFixed(1)} GiB of weights per GPU + ${MIN_KV_HEADROOM_GIB} GiB KV headroom, but its slice is ${slice.toFixed(1)} GiB (${host.gpuMemoryGiB} GiB × ${gpuMemoryUtilization}); raise gpusPerReplica, quantize, or place fewer engines per GPU`,
        });
      }
    }
    const prefixCaching =
      config.engine.prefixCaching && (!kvcached || config.engine.kvcached.maxCachedTokens > 0);
    const args = [
      "--served-model-name",
      model.name,
      "--host",
      "0.0.0.0",
      "--port",
      String(port),
      "--max-model-len",
      String(model.maxModelLen),
      "--max-num-seqs",
      String(config.engine.maxNumSeqs),
      "--max-num-batched-tokens",
      String(config.engine.maxNumBatchedTokens),
      "--tensor-parallel-size",
      String(p.gpus.length),
      ...(model.quantization ? ["--quantization", model.quantization] : []),
      ...(gpuMemoryUtilization !== undefined
        ? ["--gpu-memory-utilization", String(gpuMemoryUtilization)]
        : []),
      prefixCaching ? "--enable-prefix-caching" : "--no-enable-prefix-caching",
      ...(extraWords.get(model) ?? []),
    ];
    const env: Record<string, string> = { ...config.engine.env };
    if (kvcached) {
      env.ENABLE_KVCACHED = "true";
      env.KVCACHED_AUTOPATCH = "1";
      env.KVCACHED_IPC_NAME = `${config.engine.kvcached.ipcNamePrefix}-${name}`;
      if (prefixCaching)
        env.KVCACHED_MAX_CACHED_TOKENS = String(config.engine.kvcached.maxCachedTokens);
    }
    const engine: EnginePlan = {
      name,
      host: host.name,
      model: model.name,
      hfPath: model.hfPath!,
      replica,
      gpus: p.gpus,
      port,
      image: kvcached ? managedImage : config.engine.images.baseline,
      ...(kvcached && managedBuild ? { build: { ...managedBuild } } : {}),
      args,
      env,
      kvcached,
      prefixCaching,
      maxModelLen: model.maxModelLen,
      maxNumSeqs: config.engine.maxNumSeqs,
      maxNumBatchedTokens: config.engine.maxNumBatchedTokens,
      emulator: {
        profile: model.profile!,
        startupDelaySec: config.engine.emulatorStartupDelaySec,
        ...(kvcached
          ? { maxCachedTokens: prefixCaching ? config.engine.kvcached.maxCachedTokens : 0 }
          : {}),
      },
    };
    if (gpuMemoryUtilization !== undefined) engine.gpuMemoryUtilization = gpuMemoryUtilization;
    if (model.quantization) engine.quantization = model.quantization;
    return engine;
  });

  if (kvcached) {
    for (const [gpu, weights] of weightsPerGpu) {
      const usable = host.gpuMemoryGiB * KVCACHED_MAX_GPU_FRACTION;
      const count = enginesPerGpu.get(gpu) ?? 1;
      if (weights + MIN_KV_HEADROOM_GIB * count > usable) {
        reasons.push({
          path: ["placement"],
          message: `GPU ${gpu}: the weights of its ${count} engine(s) (≈${weights.toFixed(1)} GiB) plus KV headroom exceed ${usable.toFixed(1)} GiB; spread them over more GPUs`,
        });
      }
    }
  }

  if (config.placement === "packed" && !kvcached) {
    warnings.push(
      "packed placement without KVCached: co-located engines get static --gpu-memory-utilization slices; KVCached (the managed arm) exists for this case",
    );
  }
  const unpinned = new Set(
    engines.filter((e) => !engineImagePinned(e)).map((e) => e.build?.from ?? e.image),
  );
  for (const image of unpinned)
    warnings.push(
      `engine image ${image} is not pinned by digest: results are not reproducible; cloud runs refuse it unless run.allowUnpinnedImages (pin with repo@sha256:...)`,
    );

  const routerPort = config.router.port;
  const usedPorts = new Map<number, string>();
  for (const e of engines) usedPorts.set(e.port, e.name);
  if (usedPorts.has(routerPort)) {
    reasons.push({
      path: ["router", "port"],
      message: `${routerPort} is also the port of engine ${usedPorts.get(routerPort)}; change router.port or engine.basePort`,
    });
  }
  const lastPort = config.engine.basePort + engines.length - 1;
  if (lastPort > 65535)
    reasons.push({
      path: ["engine", "basePort"],
      message: `engine ports ${config.engine.basePort}-${lastPort} run past 65535; lower engine.basePort`,
    });
  reasons.push(...contextProblems(config, opts.workloadExtent ?? configWorkloadExtent(config)));

  if (reasons.length > 0) throw new PlanError(stack, reasons);

  const backends: RouterPlan["backends"] = {};
  for (const m of config.models) {
    backends[m.name] = engines
      .filter((e) => e.model === m.name)
      .map((e) => ({ engine: e.name, host: backendAddress(config.target, e.name), port: e.port }));
  }
  const pollIntervalMs = config.router.pollIntervalMs;
  const router: RouterPlan = {
    policy: routerPolicyFor(config),
    port: routerPort,
    image: config.router.image,
    pollIntervalMs,
    requestTimeoutMs: config.router.requestTimeoutMs,
    options: routerOptions(config),
    backends,
  };

  const result: StackPlan = {
    schemaVersion: PLAN_SCHEMA_VERSION,
    stack,
    target: config.target,
    mode: config.mode,
    emulated: config.target === "local" || config.rehearsal,
    hosts: [host],
    engines,
    router,
    runner: runnerPlan(config),
    warnings,
  };
  const cost = costEstimate(config);
  if (cost) result.cost = cost;
  return result;
}

/** The router's policy options from the config (an endpoint's plan carries its session header). */
function routerOptions(config: StackConfig): RouterPlan["options"] {
  const o = config.router.options;
  return {
    prefixBlockChars: o.prefixBlockChars,
    loadGateThreshold: o.loadGateThreshold,
    sessionHeader: o.sessionHeader,
    kvAwareWeights: { ...o.kvAwareWeights },
    // Peers call metrics older than 200 ms stale at a 50 ms poll; scale with the poll interval.
    metricsStaleMs: o.metricsStaleMs ?? Math.max(200, 3 * config.router.pollIntervalMs),
  };
}

/** One value for both arms, or the arm's own (`{baseline: …, managed: …}`). */
function forArm<T>(v: T | { baseline: T; managed: T }, arm: StackConfig["mode"]): T {
  return typeof v === "object" && v !== null && !Array.isArray(v) && "baseline" in v
    ? (v as { baseline: T; managed: T })[arm]
    : (v as T);
}

/**
 * An arm that measures a running endpoint: nothing placed, nothing deployed. The plan holds the
 * URLs and the name of the key's variable (never the key); the router section only carries the
 * session header the runner sends, and says `round-robin` for no policy of the kit's.
 */
function endpointArmPlan(stack: string, config: StackConfig, opts: PlanOptions): StackPlan {
  const e = config.endpoint;
  const reasons = contextProblems(config, opts.workloadExtent ?? configWorkloadExtent(config));
  if (reasons.length > 0) throw new PlanError(stack, reasons);
  const engineUrls = forArm(e.engineUrls, config.mode);
  const warnings = engineUrls.length
    ? []
    : [
        "endpoint.engineUrls is empty: no server-side metrics (KV usage, queue, prefix hits) are recorded, only what the client sees",
      ];
  const result: StackPlan = {
    schemaVersion: PLAN_SCHEMA_VERSION,
    stack,
    target: "endpoint",
    mode: config.mode,
    emulated: e.emulated,
    hosts: [],
    engines: [],
    router: {
      policy: "round-robin",
      port: 0,
      image: "",
      pollIntervalMs: config.router.pollIntervalMs,
      requestTimeoutMs: config.router.requestTimeoutMs,
      options: routerOptions(config),
      backends: {},
    },
    runner: runnerPlan(config),
    warnings,
    endpoint: {
      url: forArm(e.url!, config.mode).replace(/\/+$/, ""),
      engineUrls: engineUrls.map((u) => u.replace(/\/+$/, "")),
      ...(e.apiKeyEnv ? { apiKeyEnv: e.apiKeyEnv } : {}),
      readyPath: e.readyPath,
    },
  };
  const cost = costEstimate(config);
  if (cost) result.cost = cost;
  return result;
}

/**
 * The longest request of a workload generated from the config alone, when that is exact: fixed
 * synthetic lengths, shared prefixes, and multi-round QA (the last round carries the system
 * prompt, every question and every earlier answer). Undefined for files and random lengths
 * (cli/plan-stack.ts measures those).
 */
export function configWorkloadExtent(config: StackConfig): RequestExtent | undefined {
  const w = config.workload;
  const d = w.dataset;
  const fixedOutput = w.outputTokensStddev === 0;
  const out = w.outputTokensMean;
  const outText = out === undefined ? "" : ` + workload.outputTokensMean ${out}`;
  if (d.kind === "synthetic" && d.inputTokensStddev === 0 && fixedOutput)
    return {
      promptTokens: d.inputTokensMean,
      outputTokens: out,
      source: `workload.dataset.inputTokensMean ${d.inputTokensMean}${outText}`,
    };
  if (d.kind === "shared-prefix" && fixedOutput)
    return {
      promptTokens: d.systemPromptTokens + d.questionTokens,
      outputTokens: out,
      source: `workload.dataset.systemPromptTokens ${d.systemPromptTokens} + questionTokens ${d.questionTokens}${outText}`,
    };
  if (d.kind === "multi-round-qa")
    return {
      promptTokens:
        d.systemPromptTokens + d.rounds * d.questionTokens + (d.rounds - 1) * d.answerTokens,
      outputTokens: d.answerTokens,
      source: `the last of workload.dataset.rounds ${d.rounds}: systemPromptTokens ${d.systemPromptTokens} + ${d.rounds} × questionTokens ${d.questionTokens} + ${d.rounds - 1} earlier answers × answerTokens ${d.answerTokens}, answering answerTokens ${d.answerTokens}`,
    };
  return undefined;
}

/**
 * The most standard deviations a length drawn by lib/random's gauss can lie above its mean: Box–
 * Muller with 53-bit uniforms gives |z| ≤ sqrt(-2 ln 2^-53) ≈ 8.572.
 */
export const MAX_GAUSS_SIGMAS = Math.sqrt(-2 * Math.log(2 ** -53));

/**
 * A hard upper bound on prompt + max_tokens of a synthetic or shared-prefix workload with random
 * lengths (undefined for other kinds): when it fits every maxModelLen, no request can overflow
 * and the workload need not be built to measure it.
 */
export function configWorkloadBound(config: StackConfig): number | undefined {
  const w = config.workload;
  const d = w.dataset;
  const out =
    w.outputTokensMean === undefined
      ? 1
      : w.outputTokensMean + MAX_GAUSS_SIGMAS * w.outputTokensStddev;
  if (d.kind === "synthetic")
    return Math.trunc(d.inputTokensMean + MAX_GAUSS_SIGMAS * d.inputTokensStddev) + Math.trunc(out);
  if (d.kind === "shared-prefix") return d.systemPromptTokens + d.questionTokens + Math.trunc(out);
  return undefined;
}

/** vLLM refuses a request whose prompt + max_tokens exceeds max_model_len (HTTP 400). */
export function contextProblems(
  config: StackConfig,
  extent: RequestExtent | undefined,
): PlanProblem[] {
  if (!extent) return [];
  const driven = new Set(config.workload.models ?? config.models.map((m) => m.name));
  const out: PlanProblem[] = [];
  const output = extent.outputTokens;
  const need = extent.promptTokens + (output ?? 1);
  for (const [i, m] of config.models.entries()) {
    if (!driven.has(m.name) || need <= m.maxModelLen) continue;
    out.push({
      path: ["models", i, "maxModelLen"],
      message:
        output === undefined
          ? `${m.maxModelLen} is too small for the workload's longest prompt, ${extent.promptTokens} tokens (${extent.source}): vLLM needs prompt + at least 1 output token ≤ maxModelLen, so such requests would fail; raise maxModelLen to at least ${need} or shorten the prompts`
          : `${m.maxModelLen} is below the workload's longest request: ${extent.promptTokens} prompt tokens + ${output} output tokens = ${need} (${extent.source}); vLLM refuses prompt + max_tokens > maxModelLen, so such requests would fail; raise maxModelLen to at least ${need} or shorten the workload`,
    });
  }
  return out;
}

/**
 * How the router reaches an engine: loopback for local processes, the engine's compose service or
 * Kubernetes Service name (both DNS names on the deployment's network) elsewhere.
 */
export function backendAddress(target: StackConfig["target"], engine: string): string {
  return target === "local" ? "127.0.0.1" : engine;
}

export function runnerPlan(config: StackConfig): RunnerPlan {
  const w = config.workload;
  const listed: LoadPoint[] = w.loadPoints.map((lp) =>
    "concurrency" in lp
      ? { kind: "concurrency", concurrency: lp.concurrency }
      : {
          kind: "request-rate",
          requestRate: lp.requestRate,
          distribution: lp.distribution,
          ...(lp.burstiness !== undefined ? { burstiness: lp.burstiness } : {}),
          ...(lp.maxConcurrency !== undefined ? { maxConcurrency: lp.maxConcurrency } : {}),
        },
  );
  // The plan holds the points in the order they run; `order` says how it came about.
  const loadPoints = orderLoadPoints(listed, w.order, config.run.seed);
  return {
    workload: {
      dataset: { ...w.dataset },
      endpointType: w.endpointType,
      streaming: w.streaming,
      ...(w.requestCount !== undefined ? { requestCount: w.requestCount } : {}),
      ...(w.outputTokensMean !== undefined ? { outputTokensMean: w.outputTokensMean } : {}),
      outputTokensStddev: w.outputTokensStddev,
      ignoreEos: w.ignoreEos,
      ...(w.minTokens !== undefined ? { minTokens: w.minTokens } : {}),
      models: w.models ?? config.models.map((m) => m.name),
    },
    loadPoints,
    slo: { ...config.slo },
    repeats: config.run.repeats,
    warmupRequests: config.run.warmupRequests,
    interleaveArms: config.run.interleaveArms,
    destroyAfterRun: config.run.destroyAfterRun,
    seed: config.run.seed,
    ...(config.runner.parallelism > 1 ? { parallelism: config.runner.parallelism } : {}),
    ...(w.order !== "listed" ? { order: w.order } : {}),
  };
}

export function costEstimate(config: StackConfig): CostEstimate | undefined {
  if (config.target === "gcp-vm") {
    const hourly = hourlyPrice(config.gcp.machineType, config.gcp.provisioningModel);
    if (hourly === undefined) return undefined;
    const machine = GCP_MACHINES[config.gcp.machineType]!;
    return {
      currency: "USD",
      hourly,
      maxRunCost: Math.round(hourly * config.gcp.maxRunHours * 100) / 100,
      basis: `1 × ${config.gcp.machineType} (${config.gcp.provisioningModel}; all ${machine.gpus} GPUs billed, ${config.gpus.count} used), max ${config.gcp.maxRunHours} h`,
      source: PRICE_SOURCE,
      estimate: true,
    };
  }
  if (config.target === "ssh" && config.ssh.hourlyUsd !== undefined) {
    return {
      currency: "USD",
      hourly: config.ssh.hourlyUsd,
      maxRunCost: config.ssh.hourlyUsd,
      basis: "the price per hour the stack states for this host (ssh.hourlyUsd), not a cloud price",
      source: "stack config ssh.hourlyUsd",
      estimate: true,
    };
  }
  if (config.target === "endpoint" && config.endpoint.hourlyUsd !== undefined) {
    return {
      currency: "USD",
      hourly: config.endpoint.hourlyUsd,
      maxRunCost: config.endpoint.hourlyUsd,
      basis:
        "the price per hour the stack states for this endpoint (endpoint.hourlyUsd), not a cloud price",
      source: "stack config endpoint.hourlyUsd",
      estimate: true,
    };
  }
  if (config.target === "gke") {
    const node = hourlyPrice(config.gke.machineType, config.gke.provisioningModel);
    if (node === undefined) return undefined;
    // GKE Standard cluster management fee: $0.10 per cluster-hour.
    const hourly = Math.round((node * config.gke.nodeCount + 0.1) * 100) / 100;
    return {
      currency: "USD",
      hourly,
      maxRunCost: Math.round(hourly * config.gke.maxRunHours * 100) / 100,
      basis: `${config.gke.nodeCount} × ${config.gke.machineType} (${config.gke.provisioningModel}) + GKE cluster fee, max ${config.gke.maxRunHours} h`,
      source: `${PRICE_SOURCE}; GKE fee $0.10/cluster-hour`,
      estimate: true,
    };
  }
  return undefined;
}
