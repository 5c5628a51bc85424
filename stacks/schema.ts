/**
 * StackConfig: the one schema of what a user may configure. The Pulumi program (pulumi.Config
 * under the `inferbench` namespace), the CLI (stacks/Pulumi.<stack>.yaml read directly) and the
 * local mode all validate with this schema, so a stack file means the same thing everywhere.
 */
import { z } from "zod";

/** Kubernetes/compose/DNS-safe name: served model names become engine and service names. */
const dnsName = z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,46}[a-z0-9])?$/, {
  message: "must be lowercase letters, digits, '.' or '-', start and end alphanumeric, ≤ 48 chars",
});

const port = z.number().int().min(1).max(65535);
const positiveInt = z.number().int().min(1);

/** A config secret: a plain string (CLI/env), or Pulumi's encrypted `{secure: ...}` form. */
export const secretValue = z.union([
  z.string().min(1),
  z.strictObject({ secure: z.string().min(1) }),
]);

export const modelSchema = z.strictObject({
  /** Served model name: the `model` clients send; also names engines (`<name>-<replica>`). */
  name: dnsName,
  /** Hugging Face repository id the engine loads. */
  hfPath: z
    .string()
    .regex(/^[\w.-]+\/[\w.-]+$/, { message: "must be a Hugging Face id like org/name" }),
  replicas: positiveInt.default(1),
  /** GPUs per replica = tensor parallel size. */
  gpusPerReplica: positiveInt.default(1),
  quantization: z
    .enum(["awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes"])
    .optional(),
  maxModelLen: positiveInt.default(8192),
  /** Extra `vllm serve` flags appended after the generated ones. */
  extraArgs: z.array(z.string()).default([]),
  /** engine-sim profile used when emulated, e.g. `llama-3.1-8b@h100`. */
  profile: z.string().min(1),
  /** Weight memory in GiB; estimated from the parameter count in hfPath when omitted. */
  weightsGiB: z.number().positive().optional(),
});

export const gpuTypes = ["h100-80gb", "h200-141gb", "a100-80gb", "a100-40gb", "l4-24gb"] as const;

export const gpusSchema = z.strictObject({
  type: z.enum(gpuTypes).default("h100-80gb"),
  /** GPUs of the host the plan may use (ids 0..count-1 unless `ids` given). */
  count: positiveInt.default(6),
  ids: z.array(z.number().int().min(0)).optional(),
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
  managed: "ghcr.io/ovg-project/kvcached-vllm:latest",
};

export const engineSchema = z.strictObject({
  /** Image per arm, pinned by digest (`repo@sha256:...` or `repo:tag@sha256:...`). */
  images: z
    .strictObject({
      baseline: z.string().min(1).default(DEFAULT_IMAGES.baseline),
      managed: z.string().min(1).default(DEFAULT_IMAGES.managed),
    })
    .prefault({}),
  prefixCaching: z.boolean().default(true),
  maxNumSeqs: positiveInt.default(256),
  maxNumBatchedTokens: positiveInt.default(8192),
  /** Baseline only: KVCached engines drop `--gpu-memory-utilization` (pages are mapped on demand). */
  gpuMemoryUtilization: z.number().gt(0).max(1).default(0.9),
  /** First engine port; engines take consecutive ports. */
  basePort: port.default(8001),
  /** Extra environment for every engine (never secrets: use hfToken). */
  env: z.record(z.string(), z.string()).default({}),
  kvcached: z
    .strictObject({
      /** Defaults to true on the managed arm, false on baseline. */
      enabled: z.boolean().optional(),
      ipcNamePrefix: z
        .string()
        .regex(/^[A-Za-z0-9_-]+$/)
        .default("kvcached"),
      /** Prefix-cache cap on KVCached engines (KVCACHED_MAX_CACHED_TOKENS); 0 turns caching off. */
      maxCachedTokens: z.number().int().min(0).default(16000),
    })
    .prefault({}),
  /** engine-sim start-up delay (emulated weight loading), seconds. */
  emulatorStartupDelaySec: z.number().min(0).default(1),
});

export const routerPolicy = z.enum([
  "round-robin",
  "least-busy",
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
  requestTimeoutMs: z.number().int().min(1000).default(600000),
  image: z.string().min(1).default("inferbench/router:0.1.0"),
  options: z
    .strictObject({
      prefixBlockChars: positiveInt.default(64),
      loadGateThreshold: z.number().min(0).default(4),
      sessionHeader: z.string().min(1).default("x-session-id"),
      /** Measured with bench:router: 2/2/3 beat least-busy on multi-turn load, 1/1/1 did not. */
      kvAwareWeights: z
        .strictObject({
          queue: z.number().min(0).default(2),
          kvUsage: z.number().min(0).default(2),
          prefix: z.number().min(0).default(3),
        })
        .prefault({}),
      metricsStaleMs: positiveInt.optional(),
    })
    .prefault({}),
});

const datasetSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("synthetic"),
    inputTokensMean: positiveInt.default(550),
    inputTokensStddev: z.number().min(0).default(0),
    numDatasetEntries: positiveInt.default(100),
  }),
  z.strictObject({ kind: z.literal("input-file"), path: z.string().min(1) }),
  z.strictObject({
    kind: z.literal("sharegpt"),
    path: z.string().min(1),
    maxConversations: positiveInt.default(1000),
    numPrompts: positiveInt.default(1000),
  }),
  z.strictObject({
    kind: z.literal("multi-round-qa"),
    users: positiveInt.default(10),
    rounds: positiveInt.default(5),
    systemPromptTokens: z.number().int().min(0).default(1000),
    questionTokens: positiveInt.default(100),
    answerTokens: positiveInt.default(100),
  }),
  z.strictObject({
    kind: z.literal("shared-prefix"),
    groups: positiveInt.default(8),
    promptsPerGroup: positiveInt.default(16),
    systemPromptTokens: z.number().int().min(0).default(2000),
    questionTokens: positiveInt.default(100),
  }),
  ...(["azure-trace", "mooncake"] as const).map((kind) =>
    z.strictObject({
      kind: z.literal(kind),
      path: z.string().min(1),
      timeScale: z.number().positive().default(1),
      maxRequests: positiveInt.optional(),
    }),
  ),
  z.strictObject({
    kind: z.literal("servegen"),
    path: z.string().min(1),
    datasetPath: z.string().min(1).optional(),
    timeScale: z.number().positive().default(1),
    maxRequests: positiveInt.optional(),
  }),
]);

const loadPointSchema = z.union([
  z.strictObject({ concurrency: positiveInt }),
  z.strictObject({
    requestRate: z.number().positive(),
    distribution: z.enum(["constant", "poisson", "gamma"]).default("poisson"),
    burstiness: z.number().positive().optional(),
    maxConcurrency: positiveInt.optional(),
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
  requestCount: positiveInt.optional(),
  outputTokensMean: positiveInt.optional(),
  outputTokensStddev: z.number().min(0).default(0),
  ignoreEos: z.boolean().default(false),
  minTokens: z.number().int().min(0).optional(),
  /** Models to drive; every model of the stack when omitted. */
  models: z.array(z.string()).optional(),
  loadPoints: z
    .array(loadPointSchema)
    .min(1)
    .default([{ concurrency: 1 }]),
});

export const sloSchema = z.strictObject({
  ttftMs: z.number().positive().optional(),
  itlMs: z.number().positive().optional(),
  e2eMs: z.number().positive().optional(),
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
  diskSizeGb: z.number().int().min(100).default(1000),
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

export const gkeSchema = z.strictObject({
  project: z.string().min(1).optional(),
  /** Region or zone of the cluster. */
  location: z.string().min(1).default("us-central1-a"),
  clusterName: dnsName.default("inferbench"),
  machineType: z.string().min(1).default("a3-highgpu-8g"),
  nodeCount: positiveInt.default(1),
  provisioningModel: provisioningModel.default("STANDARD"),
  gpuDriverVersion: z.enum(["LATEST", "DEFAULT", "INSTALLATION_DISABLED"]).default("LATEST"),
  maxRunHours: z.number().positive().max(168).default(4),
  namespacePrefix: dnsName.default("inferbench"),
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
  gpusPerNode: positiveInt.default(8),
  /** Extended resource name of the GPU device plugin. */
  gpuResource: z.string().min(1).default("nvidia.com/gpu"),
});

export const runSchema = z.strictObject({
  destroyAfterRun: z.boolean().default(true),
  /** Run the benchmark right after provisioning (cloud targets). */
  onProvision: z.boolean().default(true),
  repeats: positiveInt.default(1),
  warmupRequests: z.number().int().min(0).default(10),
  interleaveArms: z.boolean().default(true),
  seed: z.number().int().min(0).default(0),
  /** Cloud targets refuse images not pinned by digest unless this is set. */
  allowUnpinnedImages: z.boolean().default(false),
});

export const targets = ["local", "gcp-vm", "gke", "kubeconfig"] as const;

export const stackConfigSchema = z
  .strictObject({
    target: z.enum(targets),
    /** The arm: baseline (vanilla vLLM, round-robin) or managed (KVCached, least-busy). */
    mode: z.enum(["baseline", "managed"]),
    models: z.array(modelSchema).min(1),
    gpus: gpusSchema.prefault({}),
    placement: z.enum(["dedicated", "packed"]).default("dedicated"),
    engine: engineSchema.prefault({}),
    router: routerSchema.prefault({}),
    workload: workloadSchema.prefault({}),
    slo: sloSchema.default({}),
    gcp: gcpSchema.prefault({}),
    gke: gkeSchema.prefault({}),
    kubeconfig: kubeconfigSchema.prefault({}),
    run: runSchema.prefault({}),
    /** Cloud targets only: run engine-sim containers instead of vLLM (zero-GPU rehearsal). */
    rehearsal: z.boolean().default(false),
    /** Hugging Face token (secret: `pulumi config set --secret hfToken` or env HF_TOKEN). */
    hfToken: secretValue.optional(),
  })
  .superRefine((cfg, ctx) => {
    const names = new Set<string>();
    cfg.models.forEach((m, i) => {
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
    if (cfg.target === "gcp-vm" && cfg.gcp.sshSourceRanges.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["gcp", "sshSourceRanges"],
        message: "gcp-vm needs at least one CIDR allowed to SSH (your IP as x.x.x.x/32)",
      });
    }
  });

export type StackConfigInput = z.input<typeof stackConfigSchema>;
export type StackConfig = z.output<typeof stackConfigSchema>;
export type ModelConfig = StackConfig["models"][number];

export function isDigestPinned(image: string): boolean {
  return /^[^\s@]+@sha256:[0-9a-f]{64}$/.test(image);
}
