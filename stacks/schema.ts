/**
 * StackConfig: the one schema of what a user may configure. The Pulumi program (pulumi.Config
 * under the `inferbench` namespace), the CLI (stacks/Pulumi.<stack>.yaml read directly) and the
 * local mode all validate with this schema, so a stack file means the same thing everywhere.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

/**
 * Upper bounds of every count a user may configure. A value past one is a typo or a unit mix-up
 * (1e12 tokens, ms given as µs) that would exhaust memory or never finish, so the schema refuses
 * it and names the bound. stacks/LIMITS.md lists them with the reasons; `inferbench profile`
 * applies the same ones to its flags.
 */
export const LIMITS = {
  /** Tokens in one prompt or one answer (1 Mi); maxModelLen may be larger (long-context models). */
  tokensPerRequest: 1_048_576,
  /** Engine context length: 16 Mi tokens. */
  maxModelLen: 16_777_216,
  /** Tokens of prompt text a synthetic workload may generate in total (they are held in memory). */
  datasetTokens: 50_000_000,
  /** Distinct payloads / prompts / conversations / trace rows (each is kept in memory). */
  datasetEntries: 1_000_000,
  /** Requests measured per load point (each request's record is kept until the point ends). */
  requestCount: 1_000_000,
  /** Requests in flight (each holds a socket; past this the client, not the server, is measured). */
  concurrency: 50_000,
  /** Requests per second (the load generator keeps ~1,500 req/s on time on 2 cores). */
  requestRate: 100_000,
  /** Load points per stack. */
  loadPoints: 100,
  /** Repeats of the whole sweep. */
  repeats: 100,
  /** Warm-up requests per arm. */
  warmupRequests: 100_000,
  /** multi-round-qa users / shared-prefix groups and prompts per group. */
  users: 100_000,
  /** multi-round-qa rounds per user. */
  rounds: 10_000,
  /** Gamma shape for bursty arrivals: below 0.01 the gaps degenerate to 0 or hours. */
  burstinessMin: 0.01,
  burstinessMax: 100,
  /** Trace time scale (multiplies recorded gaps). */
  timeScaleMin: 1e-6,
  timeScaleMax: 1_000,
  /** Engines: models, replicas per model, GPUs per replica, GPUs per host. */
  models: 64,
  replicas: 1_024,
  gpusPerReplica: 64,
  gpus: 4_096,
  /** vLLM scheduler limits. */
  maxNumSeqs: 65_536,
  maxNumBatchedTokens: 16_777_216,
  /** Milliseconds: a day (also below Node's 2^31-1 ms timer limit). */
  durationMs: 86_400_000,
  /** Seconds of emulated start-up. */
  startupDelaySec: 3_600,
  /** Extra vLLM flags per model. */
  extraArgs: 256,
  /** GCP disk (GB) and GKE nodes. */
  diskSizeGb: 65_536,
  nodeCount: 1_000,
  /** Seeds are 32-bit. */
  seed: 4_294_967_295,
} as const;

/** Integer in [min, max]; the message names the bound and what it protects. */
export function boundedInt(min: number, max: number, what: string) {
  return z
    .number()
    .int()
    .min(min, { message: `must be ≥ ${min}` })
    .max(max, { message: `must be ≤ ${max.toLocaleString("en-US")} (${what})` });
}

/** Number in (0 or min, max]. */
export function boundedNumber(
  min: number,
  max: number,
  what: string,
  opts: { exclusiveMin?: boolean } = {},
) {
  const base = opts.exclusiveMin
    ? z.number().gt(min, { message: `must be > ${min}` })
    : z.number().min(min, { message: `must be ≥ ${min}` });
  return base.max(max, { message: `must be ≤ ${max.toLocaleString("en-US")} (${what})` });
}

const TOKENS = `the most tokens in one request, LIMITS.tokensPerRequest`;
const tokens = (min: number) => boundedInt(min, LIMITS.tokensPerRequest, TOKENS);
const tokenSd = boundedNumber(0, LIMITS.tokensPerRequest, TOKENS);
const entries = boundedInt(
  1,
  LIMITS.datasetEntries,
  "LIMITS.datasetEntries: each entry is held in memory",
);
const ms = (min: number) => boundedInt(min, LIMITS.durationMs, "a day, LIMITS.durationMs");
const msNumber = boundedNumber(0, LIMITS.durationMs, "a day, LIMITS.durationMs", {
  exclusiveMin: true,
});
const concurrencyInt = boundedInt(1, LIMITS.concurrency, "LIMITS.concurrency: requests in flight");
const timeScale = boundedNumber(LIMITS.timeScaleMin, LIMITS.timeScaleMax, "LIMITS.timeScaleMax");

/** Kubernetes/compose/DNS-safe name: served model names become engine and service names. */
const DNS_NAME = /^[a-z0-9]([a-z0-9.-]{0,46}[a-z0-9])?$/;
const DNS_NAME_MESSAGE =
  "must be lowercase letters, digits, '.' or '-', start and end alphanumeric, ≤ 48 chars";
const dnsName = z.string().regex(DNS_NAME, { message: DNS_NAME_MESSAGE });

const port = z.number().int().min(1).max(65535);
/**
 * Config keys whose values are secrets: their values never appear in a message, even when they
 * are malformed (a wrong type is as secret as a right one).
 */
export const SECRET_KEY =
  /(token|secret|password|passwd|apikey|api[-_]key|private[-_]?key|credentials?)$/i;

export function isSecretPath(path: readonly PropertyKey[]): boolean {
  if (path[0] === "hfToken") return true;
  if (path[0] === "kubeconfig" && path[1] === "content") return true;
  return path.some((p) => typeof p === "string" && SECRET_KEY.test(p));
}

/** A config secret: a plain string (CLI/env), or Pulumi's encrypted `{secure: ...}` form. */
export const secretValue = z.union([
  z.string().min(1),
  z.strictObject({ secure: z.string().min(1) }),
]);

export const modelSchema = z.strictObject({
  /**
   * Served model name: the `model` clients send; also names engines (`<name>-<replica>`), so it
   * is DNS-safe wherever the kit deploys engines (target endpoint: any name the endpoint serves).
   */
  name: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[^\s\0]+$/, { message: "must not hold spaces or control characters" }),
  /** Hugging Face repository id the engine loads (target endpoint: optional, for the record). */
  hfPath: z
    .string()
    .regex(/^[\w.-]+\/[\w.-]+$/, { message: "must be a Hugging Face id like org/name" })
    .optional(),
  replicas: boundedInt(1, LIMITS.replicas, "LIMITS.replicas").default(1),
  /** GPUs per replica = tensor parallel size. */
  gpusPerReplica: boundedInt(1, LIMITS.gpusPerReplica, "LIMITS.gpusPerReplica").default(1),
  quantization: z
    .enum(["awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes"])
    .optional(),
  maxModelLen: boundedInt(1, LIMITS.maxModelLen, "LIMITS.maxModelLen").default(8192),
  /**
   * Extra `vllm serve` flags appended after the generated ones. An element may hold several
   * shell words ("--seed 1"); flags the plan sets itself are refused (stacks/vllm-args.ts).
   */
  extraArgs: z
    .array(z.string().max(4096))
    .max(LIMITS.extraArgs, { message: `at most ${LIMITS.extraArgs} entries` })
    .default([]),
  /** engine-sim profile used when emulated, e.g. `llama-3.1-8b@h100` (not for target endpoint). */
  profile: z.string().min(1).optional(),
  /** Weight memory in GiB; estimated from the parameter count in hfPath when omitted. */
  weightsGiB: boundedNumber(0, 1_000_000, "1 PiB", { exclusiveMin: true }).optional(),
});

export const gpuTypes = ["h100-80gb", "h200-141gb", "a100-80gb", "a100-40gb", "l4-24gb"] as const;

export const gpusSchema = z.strictObject({
  type: z.enum(gpuTypes).default("h100-80gb"),
  /** GPUs of the host the plan may use (ids 0..count-1 unless `ids` given). */
  count: boundedInt(1, LIMITS.gpus, "LIMITS.gpus").default(6),
  ids: z
    .array(boundedInt(0, LIMITS.gpus - 1, "LIMITS.gpus"))
    .max(LIMITS.gpus)
    .optional(),
});

/**
 * Default engine images. The baseline digest is vLLM v0.14.0's as pinned in public Dockerfiles;
 * verify with `docker buildx imagetools inspect vllm/vllm-openai:v0.14.0`. No KVCached digest
 * could be verified from this workplace, so the managed default is a tag: `plan` warns and cloud
 * runs refuse it until you pin one (see README, "Pinning images").
 */
export const DEFAULT_IMAGES = {
  baseline:
    "vllm/vllm-openai:v0.14.0@sha256:1d6866b87630d94f5e0cdae55ab5abb4ce0b03fcb84d9d10612f9d518d19d4fd",
};

/**
 * kvcached from PyPI, installed into the baseline image for the managed arm. 0.1.6 (the newest
 * on PyPI, 2026-12-02) autopatches vLLM ≥ 0.8.4 (its `VLLM_ALL_RANGE`), v0.14.0 included.
 */
export const KVCACHED_VERSION = "0.1.6";

export const engineSchema = z.strictObject({
  /** Image per arm, pinned by digest (`repo@sha256:...` or `repo:tag@sha256:...`). */
  images: z
    .strictObject({
      baseline: z.string().min(1).default(DEFAULT_IMAGES.baseline),
      /**
       * Default: none, the host builds the baseline image + kvcached (engine.kvcached.version).
       * A digest given here is used as it is.
       */
      managed: z.string().min(1).optional(),
    })
    .prefault({}),
  prefixCaching: z.boolean().default(true),
  maxNumSeqs: boundedInt(1, LIMITS.maxNumSeqs, "LIMITS.maxNumSeqs").default(256),
  maxNumBatchedTokens: boundedInt(
    1,
    LIMITS.maxNumBatchedTokens,
    "LIMITS.maxNumBatchedTokens",
  ).default(8192),
  /** Baseline only: KVCached engines drop `--gpu-memory-utilization` (pages are mapped on demand). */
  gpuMemoryUtilization: z.number().gt(0).max(1).default(0.9),
  /** First engine port; engines take consecutive ports. */
  basePort: port.default(8001),
  /** Extra environment for every engine (never secrets: use hfToken). */
  env: z
    .record(
      z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "must be an environment variable name" }),
      z.string().max(65_536),
    )
    .default({}),
  kvcached: z
    .strictObject({
      /** Defaults to true on the managed arm, false on baseline. */
      enabled: z.boolean().optional(),
      ipcNamePrefix: z
        .string()
        .regex(/^[A-Za-z0-9_-]+$/)
        .default("kvcached"),
      /** The kvcached release the managed image is built with (when engine.images.managed is unset). */
      version: z
        .string()
        .regex(/^\d+\.\d+\.\d+$/, { message: "a kvcached release such as 0.1.6 (pinned: x.y.z)" })
        .default(KVCACHED_VERSION),
      /** Prefix-cache cap on KVCached engines (KVCACHED_MAX_CACHED_TOKENS); 0 turns caching off. */
      maxCachedTokens: boundedInt(0, 1_073_741_824, "2^30 tokens").default(16000),
    })
    .prefault({}),
  /** engine-sim start-up delay (emulated weight loading), seconds. */
  emulatorStartupDelaySec: boundedNumber(0, LIMITS.startupDelaySec, "an hour").default(1),
});

export const routerPolicy = z.enum([
  "round-robin",
  "least-busy",
  "power-of-two",
  "prefix-aware",
  "session",
  "kv-aware",
]);

export const routerSchema = z.strictObject({
  /**
   * One policy for both arms, or per arm (`{managed: prefix-aware}`) so that one stack file still
   * switches arms with `mode` alone. Defaults: round-robin (baseline), least-busy (managed).
   */
  policy: z
    .union([
      routerPolicy,
      z.strictObject({ baseline: routerPolicy.optional(), managed: routerPolicy.optional() }),
    ])
    .optional(),
  port: port.default(8000),
  pollIntervalMs: z.number().int().min(50).max(60000).default(1000),
  requestTimeoutMs: ms(1000).default(600000),
  image: z.string().min(1).default("inferbench/router:0.1.0"),
  options: z
    .strictObject({
      prefixBlockChars: boundedInt(1, 1_048_576, "1 MiB").default(64),
      loadGateThreshold: boundedNumber(0, 1_000_000, "1e6").default(4),
      sessionHeader: z.string().min(1).default("x-session-id"),
      /** Measured with bench:router: 2/2/3 beat least-busy on multi-turn load, 1/1/1 did not. */
      kvAwareWeights: z
        .strictObject({
          queue: boundedNumber(0, 1000, "1000").default(2),
          kvUsage: boundedNumber(0, 1000, "1000").default(2),
          prefix: boundedNumber(0, 1000, "1000").default(3),
        })
        .prefault({}),
      metricsStaleMs: ms(1).optional(),
    })
    .prefault({}),
});

/** A dataset file path (relative to the directory inferbench runs in). */
const filePath = z.string().min(1).max(4096);

const datasetSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("synthetic"),
    inputTokensMean: tokens(1).default(550),
    inputTokensStddev: tokenSd.default(0),
    numDatasetEntries: entries.default(100),
  }),
  z.strictObject({ kind: z.literal("input-file"), path: filePath }),
  z.strictObject({
    kind: z.literal("sharegpt"),
    path: filePath,
    maxConversations: entries.default(1000),
    numPrompts: entries.default(1000),
  }),
  z.strictObject({
    kind: z.literal("multi-round-qa"),
    users: boundedInt(1, LIMITS.users, "LIMITS.users").default(10),
    rounds: boundedInt(1, LIMITS.rounds, "LIMITS.rounds").default(5),
    systemPromptTokens: tokens(0).default(1000),
    questionTokens: tokens(1).default(100),
    answerTokens: tokens(1).default(100),
  }),
  z.strictObject({
    kind: z.literal("shared-prefix"),
    groups: boundedInt(1, LIMITS.users, "LIMITS.users").default(8),
    promptsPerGroup: boundedInt(1, LIMITS.users, "LIMITS.users").default(16),
    systemPromptTokens: tokens(0).default(2000),
    questionTokens: tokens(1).default(100),
  }),
  ...(["azure-trace", "mooncake"] as const).map((kind) =>
    z.strictObject({
      kind: z.literal(kind),
      path: filePath,
      timeScale: timeScale.default(1),
      maxRequests: entries.optional(),
    }),
  ),
  z.strictObject({
    kind: z.literal("servegen"),
    path: filePath,
    datasetPath: filePath.optional(),
    timeScale: timeScale.default(1),
    maxRequests: entries.optional(),
  }),
]);

const loadPointSchema = z.union([
  z.strictObject({ concurrency: concurrencyInt }),
  z.strictObject({
    requestRate: boundedNumber(0, LIMITS.requestRate, "LIMITS.requestRate", {
      exclusiveMin: true,
    }),
    distribution: z.enum(["constant", "poisson", "gamma"]).default("poisson"),
    burstiness: boundedNumber(
      LIMITS.burstinessMin,
      LIMITS.burstinessMax,
      "LIMITS.burstinessMax",
    ).optional(),
    maxConcurrency: concurrencyInt.optional(),
  }),
]);

export const workloadSchema = z.strictObject({
  dataset: datasetSchema.default({
    kind: "synthetic",
    inputTokensMean: 550,
    inputTokensStddev: 0,
    numDatasetEntries: 100,
  }),
  endpointType: z.enum(["chat", "completions"]).default("chat"),
  streaming: z.boolean().default(true),
  requestCount: boundedInt(
    1,
    LIMITS.requestCount,
    "LIMITS.requestCount: records are kept in memory",
  ).optional(),
  outputTokensMean: tokens(1).optional(),
  outputTokensStddev: tokenSd.default(0),
  ignoreEos: z.boolean().default(false),
  minTokens: tokens(0).optional(),
  /** Models to drive; every model of the stack when omitted. */
  models: z.array(z.string()).max(LIMITS.models).optional(),
  loadPoints: z
    .array(loadPointSchema)
    .min(1)
    .max(LIMITS.loadPoints, {
      message: `at most ${LIMITS.loadPoints} load points (LIMITS.loadPoints)`,
    })
    .default([{ concurrency: 1 }]),
  /**
   * The order the load points run in: as listed, by load (ascending: light to heavy, the order of
   * published regression sweeps; descending warms caches for the points after it), or shuffled
   * by run.seed.
   */
  order: z.enum(["listed", "ascending", "descending", "shuffled"]).default("listed"),
});

export const sloSchema = z.strictObject({
  ttftMs: msNumber.optional(),
  itlMs: msNumber.optional(),
  e2eMs: msNumber.optional(),
});

const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, {
  message: "must be an IPv4 CIDR like 203.0.113.7/32",
});
const provisioningModel = z.enum(["STANDARD", "SPOT", "FLEX_START"]);

export const gcpSchema = z.strictObject({
  project: z.string().min(1).optional(),
  region: z.string().min(1).default("us-central1"),
  /** Tried in order; GPU capacity varies by zone. */
  zones: z.array(z.string().min(1)).min(1).default(["us-central1-a"]),
  machineType: z.string().min(1).default("a3-highgpu-8g"),
  provisioningModel: provisioningModel.default("STANDARD"),
  diskSizeGb: boundedInt(100, LIMITS.diskSizeGb, "GCP's 64 TB disk limit").default(1000),
  imageProject: z.string().min(1).default("deeplearning-platform-release"),
  imageFamily: z.string().min(1).default("common-cu124-ubuntu-2204-nvidia-550"),
  /** Dead-man switch: the VM deletes itself after this many hours. */
  maxRunHours: z.number().positive().max(168).default(4),
  /** Operator CIDRs allowed to SSH; nothing else is opened. */
  sshSourceRanges: z.array(cidr).default([]),
  sshUser: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]*$/)
    .default("inferbench"),
  sshPublicKey: z.string().min(1).optional(),
  networkName: dnsName.default("inferbench"),
});

/**
 * Where engine pods keep downloaded weights: emptyDir (per pod, gone with it), a hostPath on the
 * GPU node (kept across runs), or a PersistentVolumeClaim the user made (ReadWriteMany when
 * several engine pods mount it).
 */
export const hfCacheSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("emptyDir") }),
  z.strictObject({
    kind: z.literal("hostPath"),
    path: z.string().regex(/^\//, "an absolute path"),
  }),
  z.strictObject({ kind: z.literal("pvc"), claimName: dnsName }),
]);

/** What every Kubernetes target deploys with (gke and kubeconfig alike). */
const kubeWorkloadFields = {
  hfCache: hfCacheSchema.default({ kind: "emptyDir" }),
  /** The kit image (runner Job), pullable by the cluster: build compose/kit.Dockerfile and push it. */
  kitImage: z.string().min(1).default("inferbench/inferbench:0.1.0"),
  /** engine-sim image for a rehearsal (services/engine-sim/Dockerfile). */
  engineSimImage: z.string().min(1).default("inferbench/engine-sim:0.1.0"),
  /** `Never` where images are loaded onto the nodes beforehand (air-gapped clusters, the rehearsal). */
  imagePullPolicy: z.enum(["IfNotPresent", "Always", "Never"]).default("IfNotPresent"),
  /** Seconds an engine may take to load its weights before its startup probe gives up. */
  engineStartupSec: boundedInt(60, 7200, "engine start-up (s)").default(1800),
};

export const gkeSchema = z.strictObject({
  project: z.string().min(1).optional(),
  /** Zone of the cluster (a regional one would put nodeCount GPU nodes in every zone: refused). */
  location: z.string().min(1).default("us-central1-a"),
  clusterName: dnsName.default("inferbench"),
  machineType: z.string().min(1).default("a3-highgpu-8g"),
  nodeCount: boundedInt(1, LIMITS.nodeCount, "LIMITS.nodeCount").default(1),
  provisioningModel: provisioningModel.default("STANDARD"),
  /** Name of a specific Compute Engine reservation the GPU nodes consume (STANDARD only). */
  reservation: z.string().min(1).optional(),
  gpuDriverVersion: z.enum(["LATEST", "DEFAULT", "INSTALLATION_DISABLED"]).default("LATEST"),
  maxRunHours: z.number().positive().max(168).default(4),
  namespacePrefix: dnsName.default("inferbench"),
  ...kubeWorkloadFields,
});

const toleration = z.strictObject({
  key: z.string().min(1),
  operator: z.enum(["Exists", "Equal"]).default("Exists"),
  value: z.string().optional(),
  effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]).optional(),
});

export const kubeconfigSchema = z.strictObject({
  /** Kubeconfig contents (secret: `pulumi config set --secret --path kubeconfig.content "$(cat kc.yaml)"`). */
  content: secretValue.optional(),
  /** Path to a kubeconfig file when `content` is not set. */
  path: z.string().min(1).optional(),
  context: z.string().min(1).optional(),
  namespacePrefix: dnsName.default("inferbench"),
  nodeSelector: z.record(z.string(), z.string()).default({}),
  tolerations: z.array(toleration).default([]),
  /** GPUs per node (engines are placed as pods; this bounds a plan). */
  gpusPerNode: boundedInt(1, LIMITS.gpusPerReplica, "LIMITS.gpusPerReplica").default(8),
  /** Extended resource name of the GPU device plugin. */
  gpuResource: z.string().min(1).default("nvidia.com/gpu"),
  ...kubeWorkloadFields,
});

export const runSchema = z.strictObject({
  destroyAfterRun: z.boolean().default(true),
  /**
   * `pulumi up` by hand on a gcp-vm stack: deploy the arm right after provisioning (false: the VM
   * only). `inferbench run` always deploys and measures.
   */
  onProvision: z.boolean().default(true),
  repeats: boundedInt(1, LIMITS.repeats, "LIMITS.repeats").default(1),
  warmupRequests: boundedInt(0, LIMITS.warmupRequests, "LIMITS.warmupRequests").default(10),
  interleaveArms: z.boolean().default(true),
  seed: boundedInt(0, LIMITS.seed, "seeds are 32-bit").default(0),
  /** Cloud targets refuse images not pinned by digest unless this is set. */
  allowUnpinnedImages: z.boolean().default(false),
  /**
   * Most this run may cost (USD). A cloud run whose worst case (hourly price × the dead-man
   * switch's hours) is above it is refused before anything is created.
   */
  budgetUsd: z.number().positive().max(1_000_000).optional(),
});

/** The load generator itself. */
export const runnerSchema = z.strictObject({
  /**
   * Load-generator processes that share each point's schedule (Kubernetes targets: an indexed
   * Job's pods, one shard each, merged into one export). 1: one process.
   */
  parallelism: boundedInt(1, 256, "256 load generators").default(1),
});

/** An existing GPU host reached over SSH (on-prem box, a VM made by hand, another cloud). */
export const sshHostSchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: boundedInt(1, 65535, "TCP ports").default(22),
  user: z.string().min(1).default("root"),
  /** Private key file; without it the SSH agent (SSH_AUTH_SOCK) is used. */
  keyFile: z.string().min(1).optional(),
  /** The host's public key (`ssh-ed25519 AAAA…`, as in known_hosts): every connection checks it. */
  hostKey: z.string().min(1).optional(),
  /** Where bundles and results live on the host. */
  remoteRoot: z.string().min(1).default("/opt/inferbench"),
  /** What an hour of this host costs you (USD), for cost in compare and report; none = unknown. */
  hourlyUsd: z.number().nonnegative().max(10_000).optional(),
});

/** An http(s) base URL: no credentials in it (they would be written into plan.json and logs). */
const baseUrl = z
  .string()
  .max(2048)
  .superRefine((v, ctx) => {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      ctx.addIssue({ code: "custom", message: "must be an http(s) URL like http://10.0.0.5:8000" });
      return;
    }
    if (u.protocol !== "http:" && u.protocol !== "https:")
      ctx.addIssue({ code: "custom", message: `must be http or https, not ${u.protocol}` });
    if (u.username || u.password)
      ctx.addIssue({
        code: "custom",
        message:
          "must not carry credentials (they would be written into plan.json and logs); put the key in an environment variable named by endpoint.apiKeyEnv",
      });
    if (u.search || u.hash)
      ctx.addIssue({ code: "custom", message: "must not have a query or fragment" });
  });
/** One value for both arms, or one per arm (as router.policy), so one stack file holds an A/B. */
const perArm = <T extends z.ZodType>(t: T) =>
  z.union([t, z.strictObject({ baseline: t, managed: t })]);

/**
 * An OpenAI-compatible server that is already running (`target: endpoint`): nothing is provisioned
 * or torn down; the runner measures it from this machine.
 */
export const endpointSchema = z.strictObject({
  /** Base URL (requests go to `<url>/v1/chat/completions`); a path prefix is kept. */
  url: perArm(baseUrl).optional(),
  /**
   * Engines behind the endpoint (vLLM base URLs, each serving /metrics, /health and /version):
   * scraped before and after every point. None: the run has client-side figures only.
   */
  engineUrls: perArm(z.array(baseUrl).max(LIMITS.replicas)).default([]),
  /** Environment variable holding the API key, sent as `Authorization: Bearer`; never written. */
  apiKeyEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "must be an environment variable name" })
    .optional(),
  /** Path under the URL that answers 200 once the endpoint serves (every OpenAI server has it). */
  readyPath: z
    .string()
    .regex(/^\/[^\s?#]*$/, { message: "must be a path like /v1/models" })
    .default("/v1/models"),
  /** The endpoint serves emulated engines (engine-sim): its results are labelled EMULATED. */
  emulated: z.boolean().default(false),
  /** What an hour of this endpoint costs you (USD), for cost in compare and report. */
  hourlyUsd: z.number().nonnegative().max(10_000).optional(),
});

export const targets = ["local", "gcp-vm", "gke", "kubeconfig", "ssh", "endpoint"] as const;

export const stackConfigSchema = z
  .strictObject({
    target: z.enum(targets),
    /** The arm: baseline (vanilla vLLM, round-robin) or managed (KVCached, least-busy). */
    mode: z.enum(["baseline", "managed"]),
    models: z
      .array(modelSchema)
      .min(1)
      .max(LIMITS.models, { message: `at most ${LIMITS.models} models (LIMITS.models)` }),
    gpus: gpusSchema.prefault({}),
    placement: z.enum(["dedicated", "packed"]).default("dedicated"),
    engine: engineSchema.prefault({}),
    router: routerSchema.prefault({}),
    workload: workloadSchema.prefault({}),
    slo: sloSchema.default({}),
    gcp: gcpSchema.prefault({}),
    gke: gkeSchema.prefault({}),
    kubeconfig: kubeconfigSchema.prefault({}),
    ssh: sshHostSchema.prefault({}),
    endpoint: endpointSchema.prefault({}),
    run: runSchema.prefault({}),
    runner: runnerSchema.prefault({}),
    /** Cloud targets only: run engine-sim containers instead of vLLM (zero-GPU rehearsal). */
    rehearsal: z.boolean().default(false),
    /** Hugging Face token (secret: `pulumi config set --secret hfToken` or env HF_TOKEN). */
    hfToken: secretValue.optional(),
  })
  .superRefine((cfg, ctx) => {
    const names = new Set<string>();
    cfg.models.forEach((m, i) => {
      if (cfg.target !== "endpoint") {
        if (!DNS_NAME.test(m.name))
          ctx.addIssue({ code: "custom", path: ["models", i, "name"], message: DNS_NAME_MESSAGE });
        for (const key of ["hfPath", "profile"] as const)
          if (m[key] === undefined)
            ctx.addIssue({
              code: "custom",
              path: ["models", i, key],
              message: `required where the kit deploys engines (target ${cfg.target}): ${key === "hfPath" ? "the Hugging Face id the engine loads" : "the engine-sim profile, e.g. llama-3.1-8b@h100"}`,
            });
      }
      if (names.has(m.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["models", i, "name"],
          message: `duplicate model name "${m.name}"`,
        });
      }
      names.add(m.name);
    });
    for (const [i, name] of (cfg.workload.models ?? []).entries()) {
      if (!names.has(name)) {
        ctx.addIssue({
          code: "custom",
          path: ["workload", "models", i],
          message: `unknown model "${name}"; models of this stack: ${[...names].join(", ")}`,
        });
      }
    }
    for (const key of Object.keys(cfg.engine.env)) {
      if (SECRET_KEY.test(key))
        ctx.addIssue({
          code: "custom",
          path: ["engine", "env", key],
          message: `a secret does not go in engine.env (it would be written into deployment files and plan.json); ${/^HF_|HUGGING/i.test(key) ? "set hfToken (`pulumi config set --secret hfToken`, or HF_TOKEN in the environment)" : "pass it through the target's secret store"}`,
        });
    }
    const tokensIssue = datasetTokensIssue(cfg.workload.dataset);
    if (tokensIssue) ctx.addIssue({ code: "custom", ...tokensIssue });
    const w = cfg.workload;
    if (
      w.minTokens !== undefined &&
      w.outputTokensMean !== undefined &&
      w.minTokens > w.outputTokensMean
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["workload", "minTokens"],
        message: `minTokens ${w.minTokens} is above outputTokensMean ${w.outputTokensMean}: vLLM refuses min_tokens > max_tokens, so every request would fail`,
      });
    }
    const kinds = new Set(cfg.workload.loadPoints.map((lp) => ("concurrency" in lp ? "c" : "r")));
    if (
      (cfg.workload.order === "ascending" || cfg.workload.order === "descending") &&
      kinds.size > 1
    )
      ctx.addIssue({
        code: "custom",
        path: ["workload", "order"],
        message: `${cfg.workload.order} orders points by load, but concurrency and request-rate points have no common scale; list them in the order to run (order: listed)`,
      });
    const par = cfg.runner.parallelism;
    if (par > 1 && cfg.target !== "gke" && cfg.target !== "kubeconfig")
      ctx.addIssue({
        code: "custom",
        path: ["runner", "parallelism"],
        message: `distributed load runs as a Kubernetes indexed Job (targets gke, kubeconfig); target ${cfg.target} runs one runner process (by hand, \`inferbench runner --shard K/N --coordinator URL\` spreads a point over hosts)`,
      });
    cfg.workload.loadPoints.forEach((lp, i) => {
      const slots = "concurrency" in lp ? lp.concurrency : lp.maxConcurrency;
      if (slots !== undefined && par > slots)
        ctx.addIssue({
          code: "custom",
          path: [
            "workload",
            "loadPoints",
            i,
            "concurrency" in lp ? "concurrency" : "maxConcurrency",
          ],
          message: `${slots} in-flight requests cannot be split over runner.parallelism ${par} load generators (each needs at least one)`,
        });
    });
    if (cfg.target === "ssh") {
      for (const key of ["host", "hostKey"] as const)
        if (cfg.ssh[key] === undefined)
          ctx.addIssue({
            code: "custom",
            path: ["ssh", key],
            message:
              key === "host"
                ? "the ssh target needs the host to run on (name or address)"
                : "the ssh target needs the host's public key, pinned (`ssh-keyscan -t ed25519 HOST`, the part after the host name)",
          });
    }
    if (cfg.target === "endpoint" && cfg.endpoint.url === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["endpoint", "url"],
        message:
          "the endpoint target needs the server's base URL (one, or {baseline: URL, managed: URL})",
      });
    if (cfg.target === "endpoint" && cfg.rehearsal)
      ctx.addIssue({
        code: "custom",
        path: ["rehearsal"],
        message:
          "an endpoint is already running: nothing is deployed to rehearse (set endpoint.emulated if it serves engine-sim)",
      });
    if (cfg.target === "gcp-vm" && cfg.gcp.sshSourceRanges.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["gcp", "sshSourceRanges"],
        message: "gcp-vm needs at least one CIDR allowed to SSH (your IP as x.x.x.x/32)",
      });
    }
  });

/** Tokens of prompt text a config-generated dataset holds; refused past LIMITS.datasetTokens. */
export function datasetTokensIssue(
  d: z.output<typeof datasetSchema>,
): { path: string[]; message: string } | undefined {
  let total: number;
  let formula: string;
  let key: string;
  if (d.kind === "synthetic") {
    total = d.numDatasetEntries * (d.inputTokensMean + 3 * d.inputTokensStddev);
    formula = "numDatasetEntries × (inputTokensMean + 3 × inputTokensStddev)";
    key = "numDatasetEntries";
  } else if (d.kind === "shared-prefix") {
    total = d.groups * (d.systemPromptTokens + d.promptsPerGroup * d.questionTokens);
    formula = "groups × (systemPromptTokens + promptsPerGroup × questionTokens)";
    key = "groups";
  } else if (d.kind === "multi-round-qa") {
    total = d.systemPromptTokens + d.users * d.rounds * d.questionTokens;
    formula = "systemPromptTokens + users × rounds × questionTokens";
    key = "users";
  } else return undefined;
  if (total <= LIMITS.datasetTokens) return undefined;
  return {
    path: ["workload", "dataset", key],
    message: `the dataset would hold ≈${Math.round(total).toLocaleString("en-US")} tokens of prompt text (${formula}); the most is ${LIMITS.datasetTokens.toLocaleString("en-US")} (LIMITS.datasetTokens: prompts are held in memory)`,
  };
}

export type StackConfigInput = z.input<typeof stackConfigSchema>;
export type StackConfig = z.output<typeof stackConfigSchema>;
export type ModelConfig = StackConfig["models"][number];

export function isDigestPinned(image: string): boolean {
  return /^[^\s@]+@sha256:[0-9a-f]{64}$/.test(image);
}

/** An engine's image is reproducible: pinned by digest, or built FROM a pinned digest. */
export function engineImagePinned(e: { image: string; build?: { from: string } }): boolean {
  return isDigestPinned(e.build ? e.build.from : e.image);
}

/**
 * The tag of the managed image the host builds: kvcached's version and the base digest's first
 * 12 hex digits (or a hash of an unpinned base), so another base or release is another image.
 */
export function builtKvcachedImage(from: string, kvcached: string): string {
  const digest = /@sha256:([0-9a-f]{64})$/.exec(from)?.[1];
  const id = digest
    ? digest.slice(0, 12)
    : createHash("sha256").update(from).digest("hex").slice(0, 12);
  return `inferbench/vllm-kvcached:${kvcached}-${id}`;
}
