/**
 * Experiment plan → the Kubernetes objects of one arm. Pure: plan in, objects out; the deployer
 * (infra/kube-workloads.ts) applies them through @pulumi/kubernetes and the target (targets/kube)
 * creates the runner Jobs. Every object carries the run's labels, so a label query finds all of
 * what a run left behind (the audit).
 *
 * One namespace per arm and run (`<prefix>-<arm>-<run-id>`): both arms share a cluster side by
 * side. Per GPU group (engines that share GPUs) one Deployment; per engine one Service. The HF
 * token is never rendered: engines read it from a Secret the deployer creates from a Pulumi secret.
 */

import { datasetFiles } from "../compose/datasets.ts";
import {
  DEFAULT_ENGINE_SIM_IMAGE,
  DEFAULT_KIT_IMAGE,
  engineSimCommand,
  HF_CACHE_PATH,
  vllmCommand,
} from "../compose/render.ts";
import { UserError } from "../lib/errors.ts";
import type { Arm, EnginePlan, RouterPlan, StackPlan } from "../stacks/plan-types.ts";
import { isDigestPinned } from "../stacks/schema.ts";

/** A Kubernetes object as it is applied (validated against the OpenAPI schema in kube/validate.ts). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface Toleration {
  key: string;
  operator: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

/** Where engines keep downloaded weights (stated in every plan: an emptyDir downloads per pod). */
export type HfCache =
  | { kind: "emptyDir" }
  | { kind: "hostPath"; path: string }
  | { kind: "pvc"; claimName: string };

export interface KubeRenderOptions {
  runId: string;
  namespacePrefix: string;
  /** engine-sim in place of vLLM: no GPU limits, same topology, probes and router. */
  rehearsal: boolean;
  engineSimImage?: string;
  /** Kit image: runs `inferbench runner` in the Job. */
  kitImage?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: readonly Toleration[];
  /** Extended resource of the GPU device plugin. */
  gpuResource?: string;
  hfCache?: HfCache;
  /** Name of the Secret (key HF_TOKEN) the deployer creates; absent: engines get no token. */
  hfTokenSecret?: string;
  allowUnpinnedImages?: boolean;
  /** Seconds an engine may take to load weights before its startup probe gives up (default 1800). */
  engineStartupSec?: number;
  /** Dataset file contents by the local path the plan names (compose/datasets.ts). */
  datasets?: Readonly<Record<string, string>>;
  /**
   * The experiment plan (JSON) bound to this namespace's Services (the target binds it, see
   * `kubeEndpoints` and `datasetPathsInPod`): what the runner Job reads. Without it (a hand
   * `pulumi up` of the servers only) there is no experiment ConfigMap and no runner.
   */
  experimentPlan?: string;
  /** `Never` where images are imported into the node (the rehearsal cluster). */
  imagePullPolicy?: "IfNotPresent" | "Never" | "Always";
}

export interface RenderedKube {
  namespace: string;
  /** Applied in this order (the namespace first). */
  objects: KubeObject[];
  /** Seconds to wait for every engine's /health at most. */
  readyTimeoutSec: number;
}

export const LABEL = {
  managedBy: "app.kubernetes.io/managed-by",
  run: "inferbench.dev/run",
  arm: "inferbench.dev/arm",
  stack: "inferbench.dev/stack",
  emulated: "inferbench.dev/emulated",
  role: "inferbench.dev/role",
  group: "inferbench.dev/engine-group",
} as const;
export const MANAGED_BY = "inferbench";
/** The Secret (key HF_TOKEN) the deployer creates from a Pulumi secret; engines read it. */
export const HF_TOKEN_SECRET = "hf-token";
export const RUNNER_CONTAINER = "runner";
/** In the runner pod: results wait here until collected; the marker names below live in it. */
export const RESULTS_MOUNT = "/results";
export const EXIT_CODE_FILE = ".exit-code";
export const COLLECTED_FILE = ".collected";
const IN_POD_DIR = "/inferbench";
const EXPERIMENT_KEY = "experiment.json";
const ROUTER_KEY = "router.json";
/** A ConfigMap holds at most 1 MiB; keep room for keys and metadata. */
const CONFIGMAP_MAX_BYTES = 1_000_000;

const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** `<prefix>-<arm>-<run-id>`, a DNS-1123 label (≤ 63 characters; the prefix is cut to fit). */
export function kubeNamespace(prefix: string, arm: Arm, runId: string): string {
  const tail = `-${arm}-${runId}`;
  const ns = `${prefix.slice(0, 63 - tail.length).replace(/-+$/, "")}${tail}`;
  if (!dns1123.test(ns))
    throw new UserError(`namespace "${ns}" is not a DNS-1123 label`, {
      hint: "namespacePrefix: lowercase letters, digits and '-', starting with a letter",
    });
  return ns;
}

/** Object name for an engine: Services need DNS-1035 (a letter first, no dots). */
export function kubeName(engine: string): string {
  const n = engine
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/-+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "")
    .slice(0, 55)
    .replace(/-+$/, "");
  if (!n)
    throw new UserError(`engine "${engine}" has no letters to name a Kubernetes object after`);
  return n;
}

/** Label values: ≤ 63 characters of [A-Za-z0-9._-], alphanumeric at both ends. */
function labelValue(v: string): string {
  return v
    .replace(/[^A-Za-z0-9._-]/g, "-")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
}

export function runLabels(
  stack: StackPlan,
  runId: string,
  emulated: boolean,
): Record<string, string> {
  return {
    [LABEL.managedBy]: MANAGED_BY,
    [LABEL.run]: labelValue(runId),
    [LABEL.arm]: stack.mode,
    [LABEL.stack]: labelValue(stack.stack),
    [LABEL.emulated]: String(emulated),
  };
}

/** The label query that finds everything a run created (`kubectl get all -A -l …`). */
export function runSelector(runId: string): string {
  return `${LABEL.managedBy}=${MANAGED_BY},${LABEL.run}=${labelValue(runId)}`;
}

/** Engines that share a GPU run in one pod (the device plugin gives a GPU to one container). */
export function gpuGroups(engines: readonly EnginePlan[]): EnginePlan[][] {
  const groups: EnginePlan[][] = [];
  const owner = new Map<number, EnginePlan[]>();
  for (const e of engines) {
    const shared = [...new Set(e.gpus.map((g) => owner.get(g)).filter((g) => g !== undefined))];
    const target = shared[0] ?? [];
    if (shared.length === 0) groups.push(target);
    for (const other of shared.slice(1)) {
      target.push(...other);
      groups.splice(groups.indexOf(other), 1);
    }
    target.push(e);
    for (const member of target) for (const g of member.gpus) owner.set(g, target);
  }
  return groups;
}

function groupGpus(group: readonly EnginePlan[]): number {
  return new Set(group.flatMap((e) => e.gpus)).size;
}

/** Where the runner in the arm's namespace reaches the servers: Service names. */
export function kubeEndpoints(stack: StackPlan): {
  router: string;
  engines: Record<string, string>;
} {
  return {
    router: `http://router:${stack.router.port}`,
    engines: Object.fromEntries(
      stack.engines.map((e) => [e.name, `http://${kubeName(e.name)}:${e.port}`]),
    ),
  };
}

function datasetKey(bundlePath: string): string {
  return bundlePath.split("/").pop()!;
}

/** Local dataset path → its path inside the runner pod (mounted from the datasets ConfigMap). */
export function datasetPathsInPod(stack: StackPlan): Record<string, string> {
  return Object.fromEntries(
    datasetFiles(stack).map((f) => [
      f.localPath,
      `${IN_POD_DIR}/datasets/${datasetKey(f.bundlePath)}`,
    ]),
  );
}

/** Router file: backends addressed by their Service names in the namespace. */
export function kubeRouterConfig(stack: StackPlan): RouterPlan {
  const backends: RouterPlan["backends"] = {};
  for (const [model, list] of Object.entries(stack.router.backends))
    backends[model] = list.map((b) => ({
      engine: b.engine,
      host: kubeName(b.engine),
      port: b.port,
    }));
  return { ...stack.router, backends };
}

const healthUrl = (port: number) => `http://127.0.0.1:${port}/health`;

/** A probe for a group: one engine → httpGet; several in one container → every port, by exec. */
function probe(
  group: readonly EnginePlan[],
  rehearsal: boolean,
  periodSeconds: number,
  failureThreshold: number,
) {
  const timing = { periodSeconds, failureThreshold, timeoutSeconds: 5 };
  if (group.length === 1) return { httpGet: { path: "/health", port: group[0]!.port }, ...timing };
  const urls = group.map((e) => healthUrl(e.port));
  const command = rehearsal
    ? [
        "node",
        "-e",
        `Promise.all(${JSON.stringify(urls)}.map((u)=>fetch(u).then((r)=>{if(!r.ok)throw 0}))).then(()=>process.exit(0),()=>process.exit(1))`,
      ]
    : [
        "python3",
        "-c",
        `import urllib.request as u\nfor x in ${JSON.stringify(urls)}: u.urlopen(x, timeout=4)`,
      ];
  return { exec: { command }, ...timing };
}

function quoteSh(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Several engines in one container (they share GPUs): bash starts each, forwards TERM, and exits
 * when any one dies so the pod restarts as a whole (a half-alive group would skew the arm).
 */
export function supervisorScript(commands: readonly string[][]): string {
  return [
    "pids=()",
    ...commands.map((c) => `${c.map(quoteSh).join(" ")} & pids+=($!)`),
    `trap 'kill -TERM "\${pids[@]}" 2>/dev/null' TERM INT`,
    "wait -n; rc=$?",
    `kill -TERM "\${pids[@]}" 2>/dev/null; wait`,
    'echo "an engine of this group exited ($rc); stopping the group" >&2',
    "exit $(( rc == 0 ? 1 : rc ))",
  ].join("\n");
}

interface Ctx {
  opts: KubeRenderOptions;
  ns: string;
  labels: Record<string, string>;
  pull: "IfNotPresent" | "Never" | "Always";
}

function meta(ctx: Ctx, name: string, extra: Record<string, string> = {}) {
  return { name, namespace: ctx.ns, labels: { ...ctx.labels, ...extra } };
}

/** Scheduling shared by every pod of the arm: the runner and router sit next to the engines. */
function scheduling(ctx: Ctx) {
  const sel = ctx.opts.nodeSelector ?? {};
  const tol = ctx.opts.tolerations ?? [];
  return {
    ...(Object.keys(sel).length ? { nodeSelector: { ...sel } } : {}),
    ...(tol.length ? { tolerations: tol.map((t) => ({ ...t })) } : {}),
  };
}

function hfCacheVolume(c: HfCache) {
  if (c.kind === "hostPath")
    return { name: "hf-cache", hostPath: { path: c.path, type: "DirectoryOrCreate" } };
  if (c.kind === "pvc")
    return { name: "hf-cache", persistentVolumeClaim: { claimName: c.claimName } };
  return { name: "hf-cache", emptyDir: {} };
}

function engineGroup(ctx: Ctx, group: EnginePlan[]): KubeObject {
  const { opts } = ctx;
  const name =
    group.length === 1 ? kubeName(group[0]!.name) : `engines-${kubeName(group[0]!.name)}`;
  const podLabels = { ...ctx.labels, [LABEL.role]: "engine", [LABEL.group]: name };
  const startupSec = opts.rehearsal
    ? Math.max(60, Math.ceil(Math.max(...group.map((e) => e.emulator.startupDelaySec))) + 60)
    : (opts.engineStartupSec ?? 1800);
  const single = group.length === 1;
  const env: Array<Record<string, unknown>> = [];
  if (!opts.rehearsal) env.push({ name: "HF_HOME", value: HF_CACHE_PATH });
  // One engine: its env on the container. Several: each process gets its own (KVCached's IPC
  // name differs per engine), through `env` in front of its command.
  if (single) for (const [k, v] of Object.entries(group[0]!.env)) env.push({ name: k, value: v });
  if (!opts.rehearsal && opts.hfTokenSecret)
    env.push({
      name: "HF_TOKEN",
      valueFrom: { secretKeyRef: { name: opts.hfTokenSecret, key: "HF_TOKEN" } },
    });
  const commands = group.map((e) => [
    ...(Object.keys(e.env).length
      ? ["env", ...Object.entries(e.env).map(([k, v]) => `${k}=${v}`)]
      : []),
    ...(opts.rehearsal
      ? ["node", "--import", "tsx", "services/engine-sim/main.ts", ...engineSimCommand(e)]
      : ["vllm", "serve", ...vllmCommand(e)]),
  ]);
  const container: Record<string, unknown> = {
    name: single ? "engine" : "engines",
    image: opts.rehearsal ? (opts.engineSimImage ?? DEFAULT_ENGINE_SIM_IMAGE) : group[0]!.image,
    imagePullPolicy: ctx.pull,
    ...(opts.rehearsal && single
      ? { args: engineSimCommand(group[0]!) }
      : single
        ? { command: ["vllm", "serve"], args: vllmCommand(group[0]!) }
        : { command: ["bash", "-c", supervisorScript(commands)] }),
    ports: group.map((e) => ({ name: `p${e.port}`, containerPort: e.port })),
    env,
    // Weights load for minutes: the startup probe covers that, readiness keeps traffic off a sick
    // engine. No liveness probe: a saturated engine answers /health late and must not be killed
    // in the middle of a load point.
    startupProbe: probe(
      group,
      opts.rehearsal,
      opts.rehearsal ? 2 : 10,
      Math.ceil(startupSec / (opts.rehearsal ? 2 : 10)),
    ),
    readinessProbe: probe(group, opts.rehearsal, 5, 3),
    resources: opts.rehearsal
      ? { requests: { cpu: "50m", memory: "128Mi" }, limits: { memory: "1Gi" } }
      : { limits: { [opts.gpuResource ?? "nvidia.com/gpu"]: groupGpus(group) } },
    volumeMounts: opts.rehearsal
      ? []
      : [
          { name: "hf-cache", mountPath: HF_CACHE_PATH },
          { name: "dshm", mountPath: "/dev/shm" },
        ],
  };
  const kvcached = group.some((e) => e.kvcached);
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(ctx, name, { [LABEL.role]: "engine" }),
    spec: {
      replicas: 1,
      // A GPU node cannot hold two copies of a GPU group while one rolls over.
      strategy: { type: "Recreate" },
      selector: { matchLabels: { [LABEL.run]: ctx.labels[LABEL.run]!, [LABEL.group]: name } },
      template: {
        metadata: { labels: podLabels },
        spec: {
          ...scheduling(ctx),
          // vLLM drains in-flight requests on SIGTERM; engine-sim stops at once.
          terminationGracePeriodSeconds: opts.rehearsal ? 5 : 60,
          // KVCached engines map GPU memory through IPC segments across processes (ENGINE_MODEL.md),
          // as compose's `ipc: host` on a VM; vanilla vLLM needs only a large /dev/shm for NCCL.
          ...(!opts.rehearsal && kvcached ? { hostIPC: true } : {}),
          containers: [container],
          volumes: opts.rehearsal
            ? []
            : [
                hfCacheVolume(opts.hfCache ?? { kind: "emptyDir" }),
                { name: "dshm", emptyDir: { medium: "Memory", sizeLimit: "16Gi" } },
              ],
        },
      },
    },
  };
}

function service(
  ctx: Ctx,
  name: string,
  selector: Record<string, string>,
  port: number,
  role: string,
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(ctx, name, { [LABEL.role]: role }),
    spec: { type: "ClusterIP", selector, ports: [{ name: "http", port, targetPort: port }] },
  };
}

function configMap(ctx: Ctx, name: string, data: Record<string, string>): KubeObject {
  const bytes = Object.entries(data).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0);
  if (bytes > CONFIGMAP_MAX_BYTES)
    throw new UserError(
      `ConfigMap ${name} would hold ${bytes} bytes; Kubernetes stores at most 1 MiB per ConfigMap`,
      {
        hint: "a dataset file this large cannot travel in a ConfigMap: cut it (e.g. maxRequests) or split it",
      },
    );
  return { apiVersion: "v1", kind: "ConfigMap", metadata: meta(ctx, name), data };
}

function router(ctx: Ctx, stack: StackPlan): KubeObject[] {
  const port = stack.router.port;
  const labels = { ...ctx.labels, [LABEL.role]: "router" };
  const deployment: KubeObject = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(ctx, "router", { [LABEL.role]: "router" }),
    spec: {
      replicas: 1,
      selector: { matchLabels: { [LABEL.run]: ctx.labels[LABEL.run]!, [LABEL.role]: "router" } },
      template: {
        // A changed router config must restart the router: the hash rides on the pod template.
        metadata: {
          labels,
          annotations: {
            "inferbench.dev/router-config": hashText(JSON.stringify(kubeRouterConfig(stack))),
          },
        },
        spec: {
          ...scheduling(ctx),
          terminationGracePeriodSeconds: 10,
          containers: [
            {
              name: "router",
              image: stack.router.image,
              imagePullPolicy: ctx.pull,
              // The image's entry point is `inferbench serve router`; it listens on loopback unless told.
              args: ["--plan", `${IN_POD_DIR}/${ROUTER_KEY}`, "--host", "0.0.0.0"],
              ports: [{ name: "http", containerPort: port }],
              readinessProbe: {
                httpGet: { path: "/health", port },
                periodSeconds: 2,
                failureThreshold: 3,
              },
              resources: { requests: { cpu: "100m", memory: "128Mi" } },
              volumeMounts: [{ name: "config", mountPath: IN_POD_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: "config", configMap: { name: "router-config" } }],
        },
      },
    },
  };
  return [
    configMap(ctx, "router-config", {
      [ROUTER_KEY]: `${JSON.stringify(kubeRouterConfig(stack), null, 2)}\n`,
    }),
    deployment,
    service(
      ctx,
      "router",
      { [LABEL.run]: ctx.labels[LABEL.run]!, [LABEL.role]: "router" },
      port,
      "router",
    ),
  ];
}

/** FNV-1a, 32 bits: enough to tell two router configs apart in an annotation (not security). */
function hashText(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

function ctxFor(stack: StackPlan, opts: KubeRenderOptions): Ctx {
  const ns = kubeNamespace(opts.namespacePrefix, stack.mode, opts.runId);
  const emulated = stack.emulated || opts.rehearsal;
  return {
    opts,
    ns,
    labels: runLabels(stack, opts.runId, emulated),
    pull: opts.imagePullPolicy ?? "IfNotPresent",
  };
}

/** Everything of one arm except the runner Jobs: namespace, config, engines, router. */
export function renderKubeArm(stack: StackPlan, opts: KubeRenderOptions): RenderedKube {
  const ctx = ctxFor(stack, opts);
  if (!opts.rehearsal)
    for (const e of stack.engines) {
      // A cluster pulls; it cannot build the managed image the way a compose host does.
      if (e.build)
        throw new UserError(
          `engine ${e.name}: a Kubernetes cluster cannot build the managed image (${e.build.from} + kvcached ${e.build.kvcached}); set engine.images.managed to one it can pull`,
          {
            hint: `build it once from the repository root and push it: docker build -f compose/vllm-kvcached.Dockerfile --build-arg BASE_IMAGE=${e.build.from} --build-arg KVCACHED_VERSION=${e.build.kvcached} -t <registry>/vllm-kvcached:${e.build.kvcached} . && docker push <registry>/vllm-kvcached:${e.build.kvcached}; then --set engine.images.managed=<registry>/vllm-kvcached@sha256:<digest>`,
          },
        );
      if (!isDigestPinned(e.image) && !opts.allowUnpinnedImages)
        throw new UserError(
          `engine ${e.name}: image "${e.image}" is not pinned by digest (repo@sha256:…)`,
          {
            hint: "pin engine.images.<arm> to a digest (README: Pinning images), or set run.allowUnpinnedImages: true",
          },
        );
    }
  const names = new Map<string, string>();
  for (const e of stack.engines) {
    const n = kubeName(e.name);
    if (names.has(n) || n === "router")
      throw new UserError(
        `engines ${names.get(n) ?? "router"} and ${e.name} map to one Kubernetes name "${n}"`,
        {
          hint: "rename a model so the names differ in more than dots and case",
        },
      );
    names.set(n, e.name);
  }
  const files = datasetFiles(stack);
  const datasets: Record<string, string> = {};
  for (const f of files) {
    const content = opts.datasets?.[f.localPath];
    if (content === undefined)
      throw new UserError(
        `${f.configPath}: ${f.localPath} must travel to the cluster but its content was not given`,
        {
          hint: "read it with readDatasetFiles(plan) and pass it as `datasets`",
        },
      );
    datasets[datasetKey(f.bundlePath)] = content;
  }
  const groups = gpuGroups(stack.engines);
  const objects: KubeObject[] = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: ctx.ns, labels: { ...ctx.labels } } },
    ...(opts.experimentPlan !== undefined
      ? [configMap(ctx, "experiment", { [EXPERIMENT_KEY]: opts.experimentPlan })]
      : []),
    ...(files.length && opts.experimentPlan !== undefined
      ? [configMap(ctx, "datasets", datasets)]
      : []),
  ];
  for (const g of groups) {
    const dep = engineGroup(ctx, g);
    objects.push(dep);
    for (const e of g)
      objects.push(
        service(
          ctx,
          kubeName(e.name),
          { [LABEL.run]: ctx.labels[LABEL.run]!, [LABEL.group]: dep.metadata.name },
          e.port,
          "engine",
        ),
      );
  }
  objects.push(...router(ctx, stack));
  if ((stack.runner.parallelism ?? 1) > 1) objects.push(shardService(ctx));
  const startup = opts.rehearsal
    ? Math.max(60, ...stack.engines.map((e) => Math.ceil(e.emulator.startupDelaySec) + 60))
    : (opts.engineStartupSec ?? 1800);
  return { namespace: ctx.ns, objects, readyTimeoutSec: startup + 300 };
}

/** runner.parallelism > 1: the headless Service that gives each shard pod a DNS name. */
export const SHARD_SERVICE = "runner-shards";
/** Where shard 0 of a distributed runner listens for the other shards. */
export const SHARD_PORT = 9400;

/**
 * Headless, and listing pods before they are ready (runner pods have no readiness probe), so
 * `<job>-0.runner-shards` resolves to shard 0 as soon as it has an address.
 */
function shardService(ctx: Ctx): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(ctx, SHARD_SERVICE, { [LABEL.role]: "runner" }),
    spec: {
      clusterIP: "None",
      publishNotReadyAddresses: true,
      selector: { [LABEL.run]: ctx.labels[LABEL.run]!, [LABEL.role]: "runner" },
      ports: [{ name: "shards", port: SHARD_PORT, targetPort: SHARD_PORT }],
    },
  };
}

export interface RunnerJobOptions {
  /** Seconds the pod keeps its results after the runner exits, waiting to be collected. */
  collectWaitSec?: number;
  /** Hard bound on the Job (activeDeadlineSeconds). */
  deadlineSec: number;
}

/** Shards rather on different nodes (each brings its own CPU), but never left unscheduled. */
function spreadShards(ctx: Ctx) {
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: {
            topologyKey: "kubernetes.io/hostname",
            labelSelector: {
              matchLabels: { [LABEL.run]: ctx.labels[LABEL.run]!, [LABEL.role]: "runner" },
            },
          },
        },
      ],
    },
  };
}

/** The Job name for a batch of steps: unique per batch within the arm's namespace. */
export function runnerJobName(steps: readonly number[]): string {
  return `runner-s${steps[0] ?? 0}-n${steps.length}`;
}

/**
 * The runner as a Job: `inferbench runner --plan` from the experiment ConfigMap, results in an
 * emptyDir. After the runner exits the pod writes its exit code and waits (bounded) for the
 * target to copy the results out and drop the collected marker, so nothing is lost with the pod.
 */
export function renderRunnerJob(
  stack: StackPlan,
  steps: readonly number[],
  opts: Omit<KubeRenderOptions, "experimentPlan">,
  job: RunnerJobOptions,
): KubeObject {
  const ctx = ctxFor(stack, opts);
  const arm = stack.mode;
  const argv = [
    "inferbench",
    "runner",
    "--plan",
    `${IN_POD_DIR}/${EXPERIMENT_KEY}`,
    "--arm",
    arm,
    "--out",
    `${RESULTS_MOUNT}/${opts.runId}`,
    "--resume",
    "--steps",
    steps.join(","),
  ];
  const wait = job.collectWaitSec ?? 600;
  const name = runnerJobName(steps);
  const shards = stack.runner.parallelism ?? 1;
  // Distributed load: an indexed Job; each pod is shard $JOB_COMPLETION_INDEX, and shard 0
  // (reached by its pod DNS name) measures, merges and holds the results.
  const shardArgs =
    shards > 1
      ? ` --shard "$JOB_COMPLETION_INDEX/${shards}" --coordinator ${quoteSh(`http://${name}-0.${SHARD_SERVICE}:${SHARD_PORT}`)}`
      : "";
  // sh runs the runner in the background so a TERM (Job deleted, Ctrl-C at home) reaches it.
  const script = [
    `${argv.map(quoteSh).join(" ")}${shardArgs} & pid=$!`,
    `trap 'kill -TERM $pid 2>/dev/null' TERM INT`,
    "wait $pid; rc=$?",
    "if kill -0 $pid 2>/dev/null; then wait $pid; rc=$?; fi",
    // Only shard 0 holds results; the other shards are done once they sent their shares.
    ...(shards > 1 ? ['if [ "$JOB_COMPLETION_INDEX" != 0 ]; then exit $rc; fi'] : []),
    `echo $rc > ${RESULTS_MOUNT}/${EXIT_CODE_FILE}`,
    `echo "inferbench-runner: exit $rc; results wait up to ${wait}s to be collected"`,
    `i=0; while [ ! -e ${RESULTS_MOUNT}/${COLLECTED_FILE} ] && [ $i -lt ${wait} ]; do sleep 1; i=$((i+1)); done`,
    "exit $rc",
  ].join("\n");
  const files = datasetFiles(stack);
  const labels = { ...ctx.labels, [LABEL.role]: "runner" };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: meta(ctx, name, { [LABEL.role]: "runner" }),
    spec: {
      // A failed runner is not retried blindly: the target resumes the steps that have no point.
      // Shards fail per index, so a failed follower does not take shard 0's results with it.
      ...(shards > 1
        ? {
            completionMode: "Indexed",
            completions: shards,
            parallelism: shards,
            backoffLimitPerIndex: 0,
          }
        : { backoffLimit: 0 }),
      activeDeadlineSeconds: job.deadlineSec + wait,
      template: {
        metadata: { labels },
        spec: {
          ...scheduling(ctx),
          ...(shards > 1 ? { subdomain: SHARD_SERVICE, affinity: spreadShards(ctx) } : {}),
          restartPolicy: "Never",
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: RUNNER_CONTAINER,
              image: opts.kitImage ?? DEFAULT_KIT_IMAGE,
              imagePullPolicy: ctx.pull,
              command: ["/bin/sh", "-c", script],
              ...(shards > 1 ? { ports: [{ name: "shards", containerPort: SHARD_PORT }] } : {}),
              resources: { requests: { cpu: "500m", memory: "512Mi" } },
              volumeMounts: [
                {
                  name: "experiment",
                  mountPath: `${IN_POD_DIR}/${EXPERIMENT_KEY}`,
                  subPath: EXPERIMENT_KEY,
                  readOnly: true,
                },
                ...(files.length
                  ? [{ name: "datasets", mountPath: `${IN_POD_DIR}/datasets`, readOnly: true }]
                  : []),
                { name: "results", mountPath: RESULTS_MOUNT },
              ],
            },
          ],
          volumes: [
            { name: "experiment", configMap: { name: "experiment" } },
            ...(files.length ? [{ name: "datasets", configMap: { name: "datasets" } }] : []),
            { name: "results", emptyDir: {} },
          ],
        },
      },
    },
  };
}
