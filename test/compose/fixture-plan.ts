/**
 * Hand-built StackPlans of the reference layout (2× Llama-3.1-8B, 2× Qwen2.5-7B, 2× Llama-3.3-70B
 * AWQ, one GPU each on GPUs 0–5) for both arms. Used until stacks/plan.ts can produce them.
 */
import { fileURLToPath } from "node:url";
import type { EnginePlan, StackPlan } from "../../stacks/plan-types.ts";

const VLLM = `vllm/vllm-openai@sha256:${"a".repeat(64)}`;
const KVCACHED = `ghcr.io/ovg-project/kvcached-vllm@sha256:${"b".repeat(64)}`;
const ROUTER = `ghcr.io/inferbench/inferbench@sha256:${"c".repeat(64)}`;

const MODELS = [
  { model: "llama-3.1-8b", hf: "meta-llama/Llama-3.1-8B-Instruct", profile: "llama-3.1-8b@h100" },
  { model: "qwen2.5-7b", hf: "Qwen/Qwen2.5-7B-Instruct", profile: "qwen2.5-7b@h100" },
  {
    model: "llama-3.3-70b-awq",
    hf: "casperhansen/llama-3.3-70b-instruct-awq",
    profile: "llama-3.3-70b-awq@h100",
    quant: "awq",
  },
];

export function fixturePlan(mode: "baseline" | "managed"): StackPlan {
  const managed = mode === "managed";
  const engines: EnginePlan[] = [];
  let gpu = 0;
  for (const m of MODELS) {
    for (let r = 0; r < 2; r++) {
      const name = `${m.model}-${r}`;
      engines.push({
        name,
        host: "vm-0",
        model: m.model,
        hfPath: m.hf,
        replica: r,
        gpus: [gpu],
        port: 8001 + gpu,
        image: managed ? KVCACHED : VLLM,
        args: managed
          ? ["--max-num-seqs", "256", "--max-num-batched-tokens", "8192"]
          : [
              "--max-num-seqs",
              "256",
              "--max-num-batched-tokens",
              "8192",
              "--gpu-memory-utilization",
              "0.9",
            ],
        env: managed
          ? {
              ENABLE_KVCACHED: "true",
              KVCACHED_AUTOPATCH: "1",
              KVCACHED_IPC_NAME: `kvcached-${name}`,
            }
          : {},
        kvcached: managed,
        prefixCaching: true,
        maxModelLen: 8192,
        maxNumSeqs: 256,
        maxNumBatchedTokens: 8192,
        gpuMemoryUtilization: managed ? undefined : 0.9,
        quantization: m.quant,
        emulator: { profile: m.profile, startupDelaySec: 5 },
      });
      gpu++;
    }
  }
  const backends: StackPlan["router"]["backends"] = {};
  for (const e of engines) {
    const list = backends[e.model] ?? [];
    list.push({ engine: e.name, host: e.host, port: e.port });
    backends[e.model] = list;
  }
  return {
    schemaVersion: 1,
    stack: `gcp-${mode}`,
    target: "gcp-vm",
    mode,
    emulated: false,
    hosts: [
      { name: "vm-0", gpuType: "nvidia-h100-80gb", gpuMemoryGiB: 80, gpuIds: [0, 1, 2, 3, 4, 5] },
    ],
    engines,
    router: {
      policy: managed ? "least-busy" : "round-robin",
      port: 8000,
      image: ROUTER,
      pollIntervalMs: 250,
      options: {
        prefixBlockChars: 256,
        loadGateThreshold: 4,
        sessionHeader: "x-session-id",
        kvAwareWeights: { queue: 1, kvUsage: 1, prefix: 1 },
        metricsStaleMs: 2000,
      },
      backends,
      requestTimeoutMs: 600000,
    },
    runner: {
      workload: {
        dataset: {
          kind: "synthetic",
          inputTokensMean: 550,
          inputTokensStddev: 0,
          numDatasetEntries: 100,
        },
        endpointType: "chat",
        streaming: true,
        requestCount: 100,
        outputTokensMean: 150,
        outputTokensStddev: 0,
        ignoreEos: false,
        models: MODELS.map((m) => m.model),
      },
      loadPoints: [{ kind: "concurrency", concurrency: 8 }],
      slo: { ttftMs: 500 },
      repeats: 1,
      warmupRequests: 10,
      interleaveArms: false,
      destroyAfterRun: true,
      seed: 42,
    },
    warnings: [],
    cost: {
      currency: "USD",
      hourly: 88.49,
      maxRunCost: 530.94,
      basis: "a3-highgpu-8g on-demand, us-central1",
      source: "fixture",
      estimate: true,
    },
  };
}

/** `<repo>/fixtures/<rel>`: data copied into the repository (provenance in fixtures/README.md). */
export function fixturePath(rel: string): string {
  return fileURLToPath(new URL(`../../fixtures/${rel}`, import.meta.url));
}
