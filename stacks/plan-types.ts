/**
 * StackPlan: the pure, serialisable description of what runs. Produced by `plan(config)` from a
 * validated StackConfig; consumed by every renderer (compose, kube, local launcher) and by the
 * runner. Renderers never re-read config.
 */

export type Target = "local" | "gcp-vm" | "gke" | "kubeconfig" | "ssh" | "endpoint";
export type Arm = "baseline" | "managed";
export type Placement = "dedicated" | "packed";
export type RouterPolicy =
  | "round-robin"
  | "least-busy"
  | "power-of-two"
  | "prefix-aware"
  | "session"
  | "kv-aware";

export const PLAN_SCHEMA_VERSION = 1;

export interface StackPlan {
  schemaVersion: typeof PLAN_SCHEMA_VERSION;
  /** Stack name (`stacks/Pulumi.<stack>.yaml`). */
  stack: string;
  target: Target;
  mode: Arm;
  /** True when engines are engine-sim (emulated), never real vLLM on GPUs. */
  emulated: boolean;
  hosts: HostPlan[];
  engines: EnginePlan[];
  router: RouterPlan;
  runner: RunnerPlan;
  /** Non-fatal findings (e.g. packed placement without KVCached). */
  warnings: string[];
  /** Hourly cost estimate for cloud targets; absent for local. */
  cost?: CostEstimate;
  /** Target endpoint: the running server measured (no hosts, engines or router are deployed). */
  endpoint?: EndpointPlan;
}

/** An already-running OpenAI-compatible server: what the runner sends to and scrapes. */
export interface EndpointPlan {
  /** Base URL the requests go to (`<url>/v1/...`; a path prefix is kept). */
  url: string;
  /** Engines behind it whose /metrics, /health and /version the runner reads (may be none). */
  engineUrls: string[];
  /** Environment variable the API key is read from at run time; the key is never in a plan. */
  apiKeyEnv?: string;
  /** Answers 200 once the endpoint serves (asked with the key). */
  readyPath: string;
}

export interface HostPlan {
  name: string;
  gpuType: string;
  /** GPU memory per device, GiB. */
  gpuMemoryGiB: number;
  /** GPU ids of this host that the plan uses (e.g. 0-5 of an 8-GPU a3-highgpu-8g). */
  gpuIds: number[];
}

export interface EnginePlan {
  /** Unique, DNS-safe: `<model>-<replica>` (compose service / k8s object / process name). */
  name: string;
  host: string;
  /** Served model name (the `model` field clients send). */
  model: string;
  /** Hugging Face repository id the engine loads. */
  hfPath: string;
  replica: number;
  /** GPU ids this engine is pinned to (tensor parallelism = gpus.length). */
  gpus: number[];
  port: number;
  /** Container image, digest-pinned (`repo@sha256:...`), or the tag of the image `build` makes. */
  image: string;
  /** Built on the host (compose `build:`) rather than pulled: see EngineImageBuild. */
  build?: EngineImageBuild;
  /** `vllm serve` arguments after the model (flags and values). */
  args: string[];
  /** Engine environment (KVCached settings on the managed arm). Never secrets. */
  env: Record<string, string>;
  kvcached: boolean;
  prefixCaching: boolean;
  maxModelLen: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  /** Fraction of GPU memory for vLLM; undefined on KVCached engines (flag dropped). */
  gpuMemoryUtilization?: number;
  quantization?: string;
  /** Emulator settings, used when the plan is emulated or rehearsed with engine-sim. */
  emulator: EmulatorPlan;
}

/**
 * The managed arm's default image: the baseline's own vLLM image with a pinned kvcached release
 * installed (as kvcached's Dockerfile does it), so the two arms differ only in KVCached.
 */
export interface EngineImageBuild {
  /** The base image: the baseline arm's, digest-pinned. */
  from: string;
  /** kvcached version from PyPI (engine.kvcached.version). */
  kvcached: string;
}

export interface EmulatorPlan {
  /** engine-sim profile name, e.g. `llama-3.1-8b@h100`. */
  profile: string;
  /** Seconds before /health turns 200 (emulates weight loading). */
  startupDelaySec: number;
  /** KVCached: cap of cached prefix tokens (0 = prefix caching off). */
  maxCachedTokens?: number;
}

export interface RouterBackend {
  engine: string;
  /** Address the router dials: 127.0.0.1 locally, the engine's service name in compose/Kubernetes. */
  host: string;
  port: number;
}

export interface RouterPlan {
  policy: RouterPolicy;
  port: number;
  image: string;
  pollIntervalMs: number;
  /** Policy options (prefix block size, load-gate threshold, kv-aware weights, session header). */
  options: RouterPolicyOptions;
  /** Replicas per served model name. */
  backends: Record<string, RouterBackend[]>;
  requestTimeoutMs: number;
}

export interface RouterPolicyOptions {
  /** prefix-aware: characters per hashed prompt block. */
  prefixBlockChars: number;
  /** prefix-aware/session: fall back to least-busy when the affine replica's load exceeds mean + this. */
  loadGateThreshold: number;
  /** session: header that carries the session key (body field `user` is the fallback). */
  sessionHeader: string;
  /** kv-aware weights. */
  kvAwareWeights: { queue: number; kvUsage: number; prefix: number };
  /** Metrics older than this are stale: the replica is unknown, not idle. */
  metricsStaleMs: number;
}

export interface RunnerPlan {
  workload: WorkloadPlan;
  loadPoints: LoadPoint[];
  slo: SloTargets;
  repeats: number;
  warmupRequests: number;
  interleaveArms: boolean;
  destroyAfterRun: boolean;
  seed: number;
  /** runner.parallelism when above 1: load generators sharing each point's schedule. */
  parallelism?: number;
  /** workload.order when not `listed` (loadPoints are already in that order). */
  order?: "ascending" | "descending" | "shuffled";
}

export type LoadPoint =
  | { kind: "concurrency"; concurrency: number }
  | {
      kind: "request-rate";
      requestRate: number;
      distribution: "constant" | "poisson" | "gamma";
      /** gamma only: shape (< 1 burstier than Poisson). */
      burstiness?: number;
      maxConcurrency?: number;
    };

export type DatasetPlan =
  | {
      kind: "synthetic";
      inputTokensMean: number;
      inputTokensStddev: number;
      numDatasetEntries: number;
    }
  | { kind: "input-file"; path: string }
  | { kind: "sharegpt"; path: string; maxConversations: number; numPrompts: number }
  | {
      kind: "multi-round-qa";
      users: number;
      rounds: number;
      systemPromptTokens: number;
      questionTokens: number;
      answerTokens: number;
    }
  | {
      kind: "shared-prefix";
      groups: number;
      promptsPerGroup: number;
      systemPromptTokens: number;
      questionTokens: number;
    }
  | { kind: "azure-trace"; path: string; timeScale: number; maxRequests?: number }
  | { kind: "mooncake"; path: string; timeScale: number; maxRequests?: number }
  | {
      kind: "servegen";
      path: string;
      datasetPath?: string;
      timeScale: number;
      maxRequests?: number;
    };

export interface WorkloadPlan {
  dataset: DatasetPlan;
  endpointType: "chat" | "completions";
  streaming: boolean;
  /** Requests measured per load point (GenAI-Perf `--request-count`); undefined = its default. */
  requestCount?: number;
  /** Output length control. */
  outputTokensMean?: number;
  outputTokensStddev: number;
  ignoreEos: boolean;
  minTokens?: number;
  /** Models to drive: every model of the plan unless narrowed. */
  models: string[];
}

export interface SloTargets {
  ttftMs?: number;
  itlMs?: number;
  e2eMs?: number;
}

export interface CostEstimate {
  currency: "USD";
  hourly: number;
  /** hourly × max run hours: the most a forgotten stack can cost before its dead-man switch fires. */
  maxRunCost: number;
  basis: string;
  source: string;
  estimate: true;
}
