/**
 * StackPlan → Docker Compose project for one GPU host. Pure: plan in, file contents out.
 *
 * Layout of the rendered project (the deploy bundle uploaded to the VM):
 *   compose.yaml   engines + router (+ runner under the `runner` profile)
 *   router.json    the router's plan with backends addressed by compose service name
 *   plan.json      the plan itself (provenance; marked emulated in a rehearsal)
 *   experiment.json   the experiment plan bound to this host's addresses: what
 *                  `inferbench runner --plan` measures (written by the target, not the renderer)
 *   datasets/      the workload's dataset files, when it reads any (compose/datasets.ts)
 * `hf.env` (the Hugging Face token) is never rendered: the deployer writes it on the host with
 * mode 0600 right before `docker compose up`, and compose reads it through `env_file`.
 */
import { readFileSync } from "node:fs";
import { stringify } from "yaml";
import { UserError } from "../lib/errors.ts";
import type { EnginePlan, RouterPlan, StackPlan } from "../stacks/plan-types.ts";
import { engineImagePinned } from "../stacks/schema.ts";
import { DATASETS_DIR, datasetFiles } from "./datasets.ts";

export const COMPOSE_FILE = "compose.yaml";
export const ROUTER_CONFIG_FILE = "router.json";
export const PLAN_FILE = "plan.json";
/** Written by the deployer (mode 0600), never by the renderer. */
export const HF_ENV_FILE = "hf.env";
export const HF_CACHE_VOLUME = "hf-cache";
export const HF_CACHE_PATH = "/root/.cache/huggingface";
export const RUNNER_PROFILE = "runner";
/** The bound experiment plan the runner container reads (content given by the target). */
export const EXPERIMENT_FILE = "experiment.json";
/** Results folder of the project on the host, mounted into the runner at /results. */
export const RESULTS_DIR = "results";
/** Where the bundle lives inside the router/runner containers. */
export const IN_CONTAINER_DIR = "/inferbench";
/** Images built from this repository (services/engine-sim/Dockerfile, compose/kit.Dockerfile). */
export const DEFAULT_ENGINE_SIM_IMAGE = "inferbench/engine-sim:0.1.0";
export const DEFAULT_KIT_IMAGE = "inferbench/inferbench:0.1.0";

export interface RehearsalOptions {
  /** engine-sim image (services/engine-sim/Dockerfile); default DEFAULT_ENGINE_SIM_IMAGE. */
  engineSimImage?: string;
}

export interface RenderOptions {
  /** Compose project name; default `inferbench-<mode>` so both arms can be swapped on one host. */
  projectName?: string;
  /**
   * Swap vLLM for engine-sim: zero GPUs, same topology, ports, health checks and router.
   * Default: on when the plan is emulated (`rehearsal: true` in the stack config).
   */
  rehearsal?: RehearsalOptions | false;
  /** Accept engine images that are not pinned by digest (`run.allowUnpinnedImages`). */
  allowUnpinnedImages?: boolean;
  /** Seconds the engine health check tolerates failures while weights load (default 1800). */
  engineStartPeriodSec?: number;
  /** Kit image that runs the load generator next to the engines (compose/kit.Dockerfile). */
  runnerImage?: string;
  /**
   * Contents of the workload's dataset files, by the local path the plan names (compose/datasets.ts
   * `readDatasetFiles`); required when the workload reads a file.
   */
  datasets?: Readonly<Record<string, string>>;
  /**
   * The experiment plan (JSON text) bound to this project's addresses, for the runner service;
   * without it the project has no runner (e.g. a hand `pulumi up` of the servers only).
   */
  experimentPlan?: string;
  /** Run id: the runner writes under results/<run-id>/ so runs on one host never mix. */
  runId?: string;
  /** `uid:gid` the runner writes results as: the SSH user's, so that user can read and remove them. */
  runnerUser?: string;
}

export interface RenderedCompose {
  /** Relative path → content. */
  files: Record<string, string>;
  /** The compose project as an object (what compose.yaml serialises). */
  project: ComposeProject;
  projectName: string;
  /** Seconds `docker compose up --wait` should wait at most. */
  waitTimeoutSec: number;
}

// Minimal typing of what we emit; validated against the compose-spec JSON schema in tests.
export interface ComposeService {
  image: string;
  /** An image compose builds on the host (missing → built at `up`), tagged `image`. */
  build?: { context: string; args: Record<string, string> };
  user?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  env_file?: Array<{ path: string; required: boolean }>;
  ports?: string[];
  volumes?: string[];
  ipc?: string;
  shm_size?: string;
  healthcheck?: {
    test: string[];
    interval: string;
    timeout: string;
    retries: number;
    start_period: string;
    start_interval: string;
  };
  depends_on?: Record<string, { condition: "service_healthy" }>;
  deploy?: {
    resources: {
      reservations: {
        devices: Array<{ driver: string; device_ids: string[]; capabilities: string[] }>;
      };
    };
  };
  profiles?: string[];
  restart?: string;
  labels?: Record<string, string>;
}

export interface ComposeProject {
  name: string;
  services: Record<string, ComposeService>;
  volumes: Record<string, { name: string }>;
}

/** Compose service names: lowercase letters, digits, `-`, `_`, `.` and not starting with `-`. */
function serviceName(engine: string): string {
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(engine)) {
    throw new Error(`engine name "${engine}" is not a valid compose service name`);
  }
  return engine;
}

function hasFlag(args: string[], flag: string): boolean {
  return args.some((a) => a === flag || a.startsWith(`${flag}=`));
}

/**
 * `vllm serve` command line: the model, then the plan's args, then the flags the plan's args
 * leave out (model name, host, port, max model length, quantization, prefix caching), so the
 * container always serves exactly what the plan says whatever the plan builder put in `args`.
 */
export function vllmCommand(e: EnginePlan): string[] {
  const args = [...e.args];
  const add = (flag: string, value?: string) => {
    if (!hasFlag(args, flag)) args.push(...(value === undefined ? [flag] : [flag, value]));
  };
  add("--served-model-name", e.model);
  add("--host", "0.0.0.0");
  add("--port", String(e.port));
  add("--max-model-len", String(e.maxModelLen));
  if (e.quantization) add("--quantization", e.quantization);
  if (!hasFlag(args, "--enable-prefix-caching") && !hasFlag(args, "--no-enable-prefix-caching")) {
    args.push(e.prefixCaching ? "--enable-prefix-caching" : "--no-enable-prefix-caching");
  }
  if (e.gpus.length > 1) add("--tensor-parallel-size", String(e.gpus.length));
  return [e.hfPath, ...args];
}

/** engine-sim flags (its image's entry point is `inferbench serve engine-sim`). */
export function engineSimCommand(e: EnginePlan): string[] {
  const cmd = [
    "--model",
    e.model,
    "--profile",
    e.emulator.profile,
    "--host",
    "0.0.0.0",
    "--port",
    String(e.port),
    "--gpu",
    String(e.gpus[0] ?? 0),
    "--startup-delay",
    String(e.emulator.startupDelaySec),
    "--max-model-len",
    String(e.maxModelLen),
    "--max-num-seqs",
    String(e.maxNumSeqs),
    "--max-num-batched-tokens",
    String(e.maxNumBatchedTokens),
  ];
  if (e.kvcached) cmd.push("--kvcached");
  else if (e.gpuMemoryUtilization !== undefined) {
    cmd.push("--gpu-memory-utilization", String(e.gpuMemoryUtilization));
  }
  if (!e.prefixCaching) cmd.push("--no-prefix-caching");
  if (e.emulator.maxCachedTokens !== undefined) {
    cmd.push("--max-cached-tokens", String(e.emulator.maxCachedTokens));
  }
  return cmd;
}

/** Health check run inside the container; python exists in vLLM images, node in ours. */
function healthTest(runtime: "python" | "node", port: number): string[] {
  const url = `http://127.0.0.1:${port}/health`;
  return runtime === "python"
    ? ["CMD", "python3", "-c", `import urllib.request; urllib.request.urlopen('${url}', timeout=5)`]
    : [
        "CMD",
        "node",
        "-e",
        `fetch('${url}').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`,
      ];
}

function healthcheck(runtime: "python" | "node", port: number, startPeriodSec: number) {
  return {
    test: healthTest(runtime, port),
    interval: "15s",
    timeout: "5s",
    retries: 3,
    start_period: `${startPeriodSec}s`,
    start_interval: "5s",
  };
}

/** Router file: the plan's RouterPlan with each backend addressed by its compose service name. */
export function routerConfig(plan: StackPlan): RouterPlan {
  const backends: RouterPlan["backends"] = {};
  for (const [model, list] of Object.entries(plan.router.backends)) {
    backends[model] = list.map((b) => ({ engine: b.engine, host: b.engine, port: b.port }));
  }
  return { ...plan.router, backends };
}

/** `inferbench runner` argv inside the runner container (extra flags such as --steps follow). */
export function runnerArgv(arm: string, runId: string): string[] {
  return [
    "runner",
    "--plan",
    `${IN_CONTAINER_DIR}/${EXPERIMENT_FILE}`,
    "--arm",
    arm,
    "--out",
    `/results/${runId}`,
    "--resume",
  ];
}

/** Where the runner in this project reaches the servers: compose service names on its network. */
export function composeEndpoints(plan: StackPlan): {
  router: string;
  engines: Record<string, string>;
} {
  return {
    router: `http://router:${plan.router.port}`,
    engines: Object.fromEntries(
      plan.engines.map((e) => [e.name, `http://${serviceName(e.name)}:${e.port}`]),
    ),
  };
}

/** Local dataset path → its path inside the runner container. */
export function datasetPathsInContainer(plan: StackPlan): Record<string, string> {
  return Object.fromEntries(
    datasetFiles(plan).map((f) => [f.localPath, `${IN_CONTAINER_DIR}/${f.bundlePath}`]),
  );
}

/** Where the managed engine image's build context sits in the bundle. */
export const KVCACHED_IMAGE_DIR = "images/vllm-kvcached";

/**
 * The managed arm's engine image, built on the host from the bundle (compose/vllm-kvcached.Dockerfile:
 * the baseline's vLLM image + one pinned kvcached). Read once when this module loads, so rendering
 * stays free of I/O.
 */
export const KVCACHED_DOCKERFILE = readFileSync(
  new URL("./vllm-kvcached.Dockerfile", import.meta.url),
  "utf8",
);

export function renderCompose(plan: StackPlan, opts: RenderOptions = {}): RenderedCompose {
  const rehearsal =
    opts.rehearsal === undefined ? (plan.emulated ? {} : undefined) : opts.rehearsal || undefined;
  const simImage = rehearsal?.engineSimImage ?? DEFAULT_ENGINE_SIM_IMAGE;
  const projectName = opts.projectName ?? `inferbench-${plan.mode}`;
  const services: Record<string, ComposeService> = {};
  const labels = {
    "inferbench.stack": plan.stack,
    "inferbench.arm": plan.mode,
    "inferbench.emulated": String(plan.emulated || rehearsal !== undefined),
  };
  let maxStartPeriod = 0;

  for (const e of plan.engines) {
    const name = serviceName(e.name);
    if (rehearsal) {
      const startPeriod = Math.max(60, Math.ceil(e.emulator.startupDelaySec) + 60);
      maxStartPeriod = Math.max(maxStartPeriod, startPeriod);
      services[name] = {
        image: simImage,
        command: engineSimCommand(e),
        environment: { ...e.env },
        ports: [`127.0.0.1:${e.port}:${e.port}`],
        healthcheck: healthcheck("node", e.port, startPeriod),
        restart: "unless-stopped",
        labels: { ...labels, "inferbench.engine": e.name },
      };
      continue;
    }
    if (!engineImagePinned(e) && !opts.allowUnpinnedImages) {
      throw new UserError(
        `engine ${e.name}: image "${e.build?.from ?? e.image}" is not pinned by digest (repo@sha256:…)`,
        {
          hint: "pin engine.images.<arm> to a digest (README: Pinning images), or set run.allowUnpinnedImages: true",
        },
      );
    }
    if (e.gpus.length === 0) throw new Error(`engine ${e.name}: no GPU ids`);
    const startPeriod = opts.engineStartPeriodSec ?? 1800;
    maxStartPeriod = Math.max(maxStartPeriod, startPeriod);
    const svc: ComposeService = {
      image: e.image,
      ...(e.build
        ? {
            build: {
              context: `./${KVCACHED_IMAGE_DIR}`,
              args: { BASE_IMAGE: e.build.from, KVCACHED_VERSION: e.build.kvcached },
            },
          }
        : {}),
      entrypoint: ["vllm", "serve"],
      command: vllmCommand(e),
      environment: { HF_HOME: HF_CACHE_PATH, ...e.env },
      env_file: [{ path: `./${HF_ENV_FILE}`, required: true }],
      ports: [`127.0.0.1:${e.port}:${e.port}`],
      volumes: [`${HF_CACHE_VOLUME}:${HF_CACHE_PATH}`],
      healthcheck: healthcheck("python", e.port, startPeriod),
      deploy: {
        resources: {
          reservations: {
            devices: [{ driver: "nvidia", device_ids: e.gpus.map(String), capabilities: ["gpu"] }],
          },
        },
      },
      restart: "unless-stopped",
      labels: { ...labels, "inferbench.engine": e.name },
    };
    // KVCached engines share GPU memory through IPC segments across processes (ENGINE_MODEL.md);
    // vanilla vLLM only needs a large /dev/shm for NCCL.
    if (e.kvcached) svc.ipc = "host";
    else svc.shm_size = "16gb";
    services[name] = svc;
  }

  const routerImage = plan.router.image;
  services.router = {
    image: routerImage,
    // The router image's entry point is `inferbench serve router`, which listens on loopback
    // unless told otherwise; other containers and the published port need 0.0.0.0.
    command: ["--plan", `${IN_CONTAINER_DIR}/${ROUTER_CONFIG_FILE}`, "--host", "0.0.0.0"],
    ports: [`127.0.0.1:${plan.router.port}:${plan.router.port}`],
    volumes: [`./${ROUTER_CONFIG_FILE}:${IN_CONTAINER_DIR}/${ROUTER_CONFIG_FILE}:ro`],
    healthcheck: healthcheck("node", plan.router.port, 60),
    depends_on: Object.fromEntries(
      plan.engines.map((e) => [e.name, { condition: "service_healthy" as const }]),
    ),
    restart: "unless-stopped",
    labels: { ...labels, "inferbench.role": "router" },
  };

  // Dataset files travel in the bundle and are mounted read-only next to the runner script.
  const datasets = datasetFiles(plan);
  const datasetBundle: Record<string, string> = {};
  for (const f of datasets) {
    const content = opts.datasets?.[f.localPath];
    if (content === undefined)
      throw new UserError(
        `${f.configPath}: ${f.localPath} must travel with the bundle but its content was not given`,
        { hint: "read it with readDatasetFiles(plan) and pass it as `datasets`" },
      );
    datasetBundle[f.bundlePath] = content;
  }

  // The load generator runs next to the servers (ARCHITECTURE.md), started on demand: the kit
  // image's entry point is `inferbench`, so the command is the runner's argv.
  if (opts.experimentPlan !== undefined) {
    services.runner = {
      image: opts.runnerImage ?? DEFAULT_KIT_IMAGE,
      command: runnerArgv(plan.mode, opts.runId ?? "run"),
      ...(opts.runnerUser ? { user: opts.runnerUser } : {}),
      volumes: [
        `./${EXPERIMENT_FILE}:${IN_CONTAINER_DIR}/${EXPERIMENT_FILE}:ro`,
        ...(datasets.length > 0
          ? [`./${DATASETS_DIR}:${IN_CONTAINER_DIR}/${DATASETS_DIR}:ro`]
          : []),
        `./${RESULTS_DIR}:/results`,
      ],
      depends_on: { router: { condition: "service_healthy" } },
      profiles: [RUNNER_PROFILE],
      labels: { ...labels, "inferbench.role": "runner" },
    };
  }

  const project: ComposeProject = {
    name: projectName,
    services,
    // One fixed volume name shared by both arms' projects: weights download once per VM.
    volumes: rehearsal ? {} : { [HF_CACHE_VOLUME]: { name: "inferbench-hf-cache" } },
  };

  // A rehearsal produces emulated numbers whatever the plan said: label them so.
  const effective = rehearsal && !plan.emulated ? { ...plan, emulated: true } : plan;
  const header = [
    `# Rendered by inferbench from stack "${plan.stack}" (arm: ${plan.mode}${rehearsal ? ", rehearsal on engine-sim — emulated numbers" : ""}).`,
    "# Do not edit: re-render with `inferbench plan --out DIR`.",
    `# ${HF_ENV_FILE} is written on the host at deploy time with mode 0600; it is not part of this bundle.`,
    "",
  ].join("\n");
  return {
    files: {
      [COMPOSE_FILE]: header + stringify(project, { lineWidth: 0 }),
      [ROUTER_CONFIG_FILE]: `${JSON.stringify(routerConfig(plan), null, 2)}\n`,
      [PLAN_FILE]: `${JSON.stringify(effective, null, 2)}\n`,
      ...(opts.experimentPlan !== undefined ? { [EXPERIMENT_FILE]: opts.experimentPlan } : {}),
      ...datasetBundle,
      ...(Object.values(services).some((s) => s.build)
        ? { [`${KVCACHED_IMAGE_DIR}/Dockerfile`]: KVCACHED_DOCKERFILE }
        : {}),
    },
    project,
    projectName,
    waitTimeoutSec: maxStartPeriod + 300,
  };
}
