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
import { suggestion } from "./config.ts";
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
import { isDigestPinned, type ModelConfig, type StackConfig } from "./schema.ts";

export class PlanError extends UserError {
  constructor(
    readonly stackName: string,
    readonly reasons: string[],
  ) {
    super(`stack "${stackName}" cannot be planned:\n${reasons.map((r) => `  - ${r}`).join("\n")}`, {
      exitCode: 2,
    });
    this.name = "PlanError";
  }
}

export interface PlanOptions {
  /** engine-sim profile names; when given, unknown profiles are refused. */
  knownProfiles?: readonly string[];
}

/** KV headroom every engine needs beyond its weights (activations, CUDA graphs, a minimum of KV). */
export const MIN_KV_HEADROOM_GIB = 2;
/** KVCached engines may map up to this fraction of a GPU (no fixed slice). */
export const KVCACHED_MAX_GPU_FRACTION = 0.95;
/** vLLM flags the plan owns; users may not override them through extraArgs. */
const PLAN_OWNED_FLAGS = [
  "--port",
  "--host",
  "--served-model-name",
  "--model",
  "--tensor-parallel-size",
  "--max-model-len",
  "--max-num-seqs",
  "--max-num-batched-tokens",
  "--quantization",
  "--gpu-memory-utilization",
  "--enable-prefix-caching",
  "--no-enable-prefix-caching",
];

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

export function hostShape(config: StackConfig, reasons: string[]): HostShape {
  const gpuType = config.gpus.type;
  let capacity = config.gpus.count;
  let name = "local";
  if (config.target === "gcp-vm" || config.target === "gke") {
    const machineType =
      config.target === "gcp-vm" ? config.gcp.machineType : config.gke.machineType;
    const machine = GCP_MACHINES[machineType];
    name = config.target === "gcp-vm" ? "vm" : "gke-node";
    if (!machine) {
      reasons.push(
        `${config.target === "gcp-vm" ? "gcp" : "gke"}.machineType "${machineType}" is not a known GPU machine type${suggestion(machineType, Object.keys(GCP_MACHINES))}; known: ${Object.keys(GCP_MACHINES).join(", ")}`,
      );
    } else {
      capacity = machine.gpus;
      if (machine.gpuType !== gpuType) {
        reasons.push(
          `gpus.type is ${gpuType} but ${machineType} carries ${machine.gpuType}; set gpus.type: ${machine.gpuType}`,
        );
      }
    }
  } else if (config.target === "kubeconfig") {
    name = "node";
    capacity = config.kubeconfig.gpusPerNode;
  }
  const gpuIds = config.gpus.ids ?? Array.from({ length: config.gpus.count }, (_, i) => i);
  if (config.gpus.ids && config.gpus.ids.length !== config.gpus.count) {
    reasons.push(
      `gpus.ids lists ${config.gpus.ids.length} GPUs but gpus.count is ${config.gpus.count}`,
    );
  }
  if (new Set(gpuIds).size !== gpuIds.length)
    reasons.push(`gpus.ids has duplicates: ${gpuIds.join(",")}`);
  const outOfRange = gpuIds.filter((id) => id >= capacity);
  if (gpuIds.length > capacity) {
    reasons.push(`the plan uses ${gpuIds.length} GPUs but the host has ${capacity}`);
  } else if (outOfRange.length > 0) {
    reasons.push(
      `GPU ids ${outOfRange.join(",")} do not exist on a host with ${capacity} GPUs (ids 0-${capacity - 1})`,
    );
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
  reasons: string[],
): Placement[] {
  if (config.placement === "dedicated") {
    const needed = config.models.reduce((n, m) => n + m.replicas * m.gpusPerReplica, 0);
    if (needed > gpuIds.length) {
      reasons.push(
        `dedicated placement needs ${needed} GPUs (${config.models.map((m) => `${m.name}: ${m.replicas}×${m.gpusPerReplica}`).join(", ")}) but the plan has ${gpuIds.length} (gpus.count); add GPUs, lower replicas, or use placement: packed`,
      );
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
      reasons.push(
        `${slot.model.name} needs ${tp} GPUs per replica but the plan has ${gpuIds.length}`,
      );
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

export function plan(stack: string, config: StackConfig, opts: PlanOptions = {}): StackPlan {
  const reasons: string[] = [];
  const warnings: string[] = [];
  const { host } = hostShape(config, reasons);
  const kvcached = config.engine.kvcached.enabled ?? config.mode === "managed";
  const placements = placeEngines(config, host.gpuIds, reasons);

  for (const m of config.models) {
    if (opts.knownProfiles && !opts.knownProfiles.includes(m.profile)) {
      reasons.push(
        `models[${config.models.indexOf(m)}].profile "${m.profile}" is not an engine-sim profile${suggestion(m.profile, opts.knownProfiles)}; known: ${opts.knownProfiles.join(", ")}`,
      );
    }
    const gpuSuffix = GPU_SPECS[config.gpus.type].profileSuffix;
    if (!m.profile.endsWith(`@${gpuSuffix}`)) {
      warnings.push(
        `${m.name}: emulator profile ${m.profile} models a different GPU than gpus.type ${config.gpus.type}`,
      );
    }
    for (const flag of m.extraArgs) {
      const name = flag.split("=")[0]!;
      if (PLAN_OWNED_FLAGS.includes(name)) {
        reasons.push(
          `models[${config.models.indexOf(m)}].extraArgs sets ${name}, which the plan controls; use the matching config key instead`,
        );
      }
    }
    if (estimateWeightsGiB(m) === undefined) {
      warnings.push(
        `${m.name}: cannot estimate weight memory from "${m.hfPath}"; set models[].weightsGiB to check that it fits`,
      );
    }
  }

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
        reasons.push(
          `${name} (${model.hfPath}${model.quantization ? `, ${model.quantization}` : ""}) needs ≈${(weightsGiB / p.gpus.length).toFixed(1)} GiB of weights per GPU + ${MIN_KV_HEADROOM_GIB} GiB KV headroom, but its slice is ${slice.toFixed(1)} GiB (${host.gpuMemoryGiB} GiB × ${gpuMemoryUtilization}); raise gpusPerReplica, quantize, or place fewer engines per GPU`,
        );
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
      ...model.extraArgs,
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
      hfPath: model.hfPath,
      replica,
      gpus: p.gpus,
      port,
      image: kvcached ? config.engine.images.managed : config.engine.images.baseline,
      args,
      env,
      kvcached,
      prefixCaching,
      maxModelLen: model.maxModelLen,
      maxNumSeqs: config.engine.maxNumSeqs,
      maxNumBatchedTokens: config.engine.maxNumBatchedTokens,
      emulator: {
        profile: model.profile,
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
        reasons.push(
          `GPU ${gpu}: the weights of its ${count} engine(s) (≈${weights.toFixed(1)} GiB) plus KV headroom exceed ${usable.toFixed(1)} GiB; spread them over more GPUs`,
        );
      }
    }
  }

  if (config.placement === "packed" && !kvcached) {
    warnings.push(
      "packed placement without KVCached: co-located engines get static --gpu-memory-utilization slices; KVCached (the managed arm) exists for this case",
    );
  }
  const images = [...new Set(engines.map((e) => e.image))];
  for (const image of images) {
    if (!isDigestPinned(image)) {
      warnings.push(
        `engine image ${image} is not pinned by digest: results are not reproducible; cloud runs refuse it unless run.allowUnpinnedImages (pin with repo@sha256:...)`,
      );
    }
  }

  const routerPort = config.router.port;
  const usedPorts = new Map<number, string>();
  for (const e of engines) usedPorts.set(e.port, e.name);
  if (usedPorts.has(routerPort)) {
    reasons.push(
      `router.port ${routerPort} is also the port of engine ${usedPorts.get(routerPort)}; change router.port or engine.basePort`,
    );
  }
  const lastPort = config.engine.basePort + engines.length - 1;
  if (lastPort > 65535)
    reasons.push(
      `engine ports ${config.engine.basePort}-${lastPort} run past 65535; lower engine.basePort`,
    );

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
    options: {
      prefixBlockChars: config.router.options.prefixBlockChars,
      loadGateThreshold: config.router.options.loadGateThreshold,
      sessionHeader: config.router.options.sessionHeader,
      kvAwareWeights: { ...config.router.options.kvAwareWeights },
      // Peers call metrics older than 200 ms stale at a 50 ms poll; scale with the poll interval.
      metricsStaleMs: config.router.options.metricsStaleMs ?? Math.max(200, 3 * pollIntervalMs),
    },
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

/**
 * How the router reaches an engine: loopback for local processes, the engine's compose service or
 * Kubernetes Service name (both DNS names on the deployment's network) elsewhere.
 */
export function backendAddress(target: StackConfig["target"], engine: string): string {
  return target === "local" ? "127.0.0.1" : engine;
}

export function runnerPlan(config: StackConfig): RunnerPlan {
  const w = config.workload;
  const loadPoints: LoadPoint[] = w.loadPoints.map((lp) =>
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
