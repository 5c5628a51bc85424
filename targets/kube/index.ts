/**
 * kubeconfig (any existing cluster, VKE included) — and the workloads half of gke: both arms side
 * by side in two namespaces of one cluster. Deploy = one Pulumi stack per arm (the inline program
 * of infra/kube-workloads.ts, through @pulumi/kubernetes) → every engine's /health through the API
 * server's service proxy → per block of steps a runner Job, its log streamed, its results copied
 * home with exec + tar → undeploy = the arm's stack destroyed → destroy deletes whatever still
 * carries the run label, and the audit finds nothing that does.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { readDatasetFiles } from "../../compose/datasets.ts";
import {
  type AutomationApi,
  type InlineProgram,
  localAutomation,
  REPO_DIR,
} from "../../infra/automation.ts";
import { kubeArmProgram } from "../../infra/kube-workloads.ts";
import { apiReason, type KubeCluster, kubeCluster, loadKubeConfig } from "../../kube/cluster.ts";
import { renderOptionsOf } from "../../kube/options.ts";
import {
  COLLECTED_FILE,
  EXIT_CODE_FILE,
  gpuGroups,
  kubeName,
  kubeNamespace,
  LABEL,
  RESULTS_MOUNT,
  type RenderedKube,
  RUNNER_CONTAINER,
  renderKubeArm,
  renderRunnerJob,
  runnerJobName,
  runSelector,
} from "../../kube/render.ts";
import { validateKubeObjects } from "../../kube/validate.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { errorMessage, UserError } from "../../lib/errors.ts";
import { redactSecrets, registerSecret } from "../../lib/redact.ts";
import { DEPLOYED_IMAGES_FILE, EVENTS_FILE, PODS_LOG_FILE } from "../../results/store.ts";
import { RUNNER_SOME_INVALID } from "../../runner/run-arm.ts";
import type { Arm, StackPlan } from "../../stacks/plan-types.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { requireHfToken } from "../hf-token.ts";
import type { Leftover, Target, TargetContext } from "../types.ts";
import { bindPlanForKube } from "./bind.ts";

/** Container states that never end in a running runner (retrying will not help). */
const CANNOT_START =
  /ErrImageNeverPull|ImagePullBackOff|InvalidImageName|CreateContainerConfigError/;
const KIT_IMAGE_HINT =
  "the kit image must be pullable by the cluster (kubeconfig.kitImage) or loaded on the node (imagePullPolicy: Never)";

export { renderOptionsOf };

export interface KubeTargetDeps {
  cluster: (kubeconfig: string, context?: string) => KubeCluster;
  /** The Automation API running an arm's inline program. */
  automation: (program: InlineProgram) => AutomationApi;
  /** Reads `pulumi config set --secret` values of the user's stacks (hfToken, kubeconfig). */
  projectConfig: Pick<AutomationApi, "readProjectConfig">;
  readFile: (path: string) => string;
  env: NodeJS.ProcessEnv;
  pollMs: number;
  /** Pods Pending as unschedulable this long fail the deploy at once (with the scheduler's reason). */
  unschedulableMs: number;
}

function depsOf(partial: Partial<KubeTargetDeps>): KubeTargetDeps {
  return {
    cluster: (content, context) => kubeCluster(loadKubeConfig(content, context)),
    automation: (program) =>
      localAutomation(process.env as Record<string, string>, REPO_DIR, program),
    projectConfig: localAutomation(),
    readFile: (p) => readFileSync(p, "utf8"),
    env: process.env,
    pollMs: 2000,
    unschedulableMs: 120_000,
    ...partial,
  };
}

/** The cluster's kubeconfig: `kubeconfig.content` (plain or a Pulumi secret), `kubeconfig.path`, $KUBECONFIG, ~/.kube/config. */
export async function resolveKubeconfig(
  cfg: StackConfig["kubeconfig"],
  stack: string,
  deps: Pick<KubeTargetDeps, "projectConfig" | "readFile" | "env">,
): Promise<{ content: string; source: string }> {
  let content: string | undefined;
  let source: string;
  if (typeof cfg.content === "string") {
    content = cfg.content;
    source = "kubeconfig.content";
  } else if (cfg.content) {
    source = `kubeconfig.content (Pulumi secret of stack ${stack})`;
    const raw = await deps.projectConfig
      .readProjectConfig?.(stack, "kubeconfig")
      .catch((err: unknown) => {
        throw new UserError(`${source} could not be read: ${errorMessage(err).slice(0, 300)}`, {
          hint: "log in to the backend that encrypted it (PULUMI_CONFIG_PASSPHRASE for a local one), or set kubeconfig.path",
        });
      });
    try {
      content = (JSON.parse(raw ?? "{}") as { content?: string }).content;
    } catch {
      content = undefined;
    }
  } else {
    const path =
      cfg.path ?? deps.env.KUBECONFIG?.split(":")[0] ?? join(homedir(), ".kube", "config");
    source = cfg.path
      ? `kubeconfig.path ${path}`
      : `${deps.env.KUBECONFIG ? "$KUBECONFIG" : "~/.kube/config"} (${path})`;
    try {
      content = deps.readFile(resolve(path.replace(/^~(?=\/)/, homedir())));
    } catch (err) {
      throw new UserError(
        `${source}: cannot read it (${(err as NodeJS.ErrnoException).code ?? err})`,
        {
          hint: 'set kubeconfig.path, export KUBECONFIG, or `pulumi config set --secret --path kubeconfig.content "$(cat kc.yaml)"`',
        },
      );
    }
  }
  if (!content?.trim())
    throw new UserError(`${source} is empty`, { hint: "give the cluster's kubeconfig" });
  registerSecret(content);
  return { content, source };
}

/**
 * Where the cluster comes from: an existing one (its kubeconfig) or one the run creates (gke:
 * targets/kube/gke.ts). The workloads part of the target is the same for both.
 */
export interface ClusterSource {
  /** The cluster's kubeconfig (creating the cluster first where the source provisions one). */
  open(ctx: TargetContext): Promise<{
    kubeconfig: string;
    context?: string;
    /** Where the kubeconfig came from, for messages (never its content). */
    source: string;
    /** Pods go to these nodes (a provisioned pool's label); default kubeconfig.nodeSelector. */
    nodeSelector?: Record<string, string>;
  }>;
  /** Removes what open() created, after the workloads are gone; true when nothing is left. */
  close(ctx: TargetContext): Promise<boolean>;
  /** What open() created that is still there (cluster, pool, disks); [] for an existing cluster. */
  audit(ctx: TargetContext): Promise<Leftover[]>;
  /** False once close() removed the cluster itself: nothing can be left inside it. */
  clusterRemains(): boolean;
  cleanupCommands?(leftovers: readonly Leftover[]): string[];
}

/** An existing cluster: nothing to create or remove. */
export function existingCluster(
  cfg: StackConfig["kubeconfig"],
  stack: string,
  deps: Pick<KubeTargetDeps, "projectConfig" | "readFile" | "env">,
): ClusterSource {
  return {
    async open() {
      const kc = await resolveKubeconfig(cfg, stack, deps);
      return {
        kubeconfig: kc.content,
        source: kc.source,
        ...(cfg.context ? { context: cfg.context } : {}),
      };
    },
    close: async () => true,
    audit: async () => [],
    clusterRemains: () => true,
  };
}

interface ArmState {
  stack: StackPlan;
  config: StackConfig;
  rendered?: RenderedKube;
  /** The runner Job in flight and its pod, until its results are home. */
  job?: { name: string; pod?: string; collected: boolean };
  stackUp: boolean;
}

/** What the identity must be allowed to do: [verb, resource, API group, cluster-wide]. */
const NEEDED: ReadonlyArray<[string, string, string, boolean]> = [
  ["create", "namespaces", "", true],
  ["delete", "namespaces", "", true],
  ["create", "deployments", "apps", false],
  ["create", "services", "", false],
  ["create", "configmaps", "", false],
  ["create", "secrets", "", false],
  ["create", "jobs", "batch", false],
  ["create", "pods/exec", "", false],
  ["get", "services/proxy", "", false],
  ["list", "events", "", false],
];

export function kubeTarget(
  configs: Record<string, StackConfig>,
  partial: Partial<KubeTargetDeps> = {},
  clusterSource?: (first: StackConfig, stack: string, deps: KubeTargetDeps) => ClusterSource,
): Target {
  const deps = depsOf(partial);
  const first = Object.values(configs)[0]!;
  let source: ClusterSource | undefined;
  let nodeSelector: Record<string, string> = first.kubeconfig.nodeSelector;
  const arms = new Map<Arm, ArmState>();
  let cluster: KubeCluster | undefined;
  let kubeconfig = "";
  let hfToken: string | undefined;
  let runId = "";
  let context: string | undefined;
  const live = () => {
    if (!cluster) throw new Error("not connected to the cluster");
    return cluster;
  };
  const rehearsalOf = (p: StackPlan) => first.rehearsal || p.emulated;
  const stateOf = (arm: Arm, ctx: TargetContext): ArmState => {
    let s = arms.get(arm);
    if (!s) {
      s = { stack: ctx.plan.arms[arm]!, config: configs[arm] ?? first, stackUp: false };
      arms.set(arm, s);
    }
    return s;
  };
  const nsOf = (arm: Arm, ctx: TargetContext) => {
    const c = stateOf(arm, ctx).config;
    return kubeNamespace(
      (c.target === "gke" ? c.gke : c.kubeconfig).namespacePrefix,
      arm,
      ctx.store.runId,
    );
  };
  const pulumiStack = (arm: Arm, ctx: TargetContext, program: InlineProgram) =>
    deps.automation(program).stack(join(ctx.store.dir, "pulumi"), `${ctx.store.runId}-${arm}`);
  const out = (ctx: TargetContext) => (s: string) => ctx.log.debug(redactSecrets(s.trimEnd()));

  let sideBySide = true;
  return {
    kind: first.target === "gke" ? "gke" : "kubeconfig",
    /** Both arms at once in their namespaces, unless the plan swaps them (`--no-interleave`). */
    get sideBySide() {
      return sideBySide;
    },
    async provision(ctx) {
      runId = ctx.store.runId;
      sideBySide = ctx.plan.order === "per-point";
      hfToken = await requireHfToken(configs, ctx.plan.arms, rehearsalOf, deps.projectConfig);
      const firstStack = Object.values(ctx.plan.arms)[0]!.stack;
      source = (clusterSource ?? ((f, st, d) => existingCluster(f.kubeconfig, st, d)))(
        first,
        firstStack,
        deps,
      );
      const kc = await source.open(ctx);
      kubeconfig = kc.kubeconfig;
      registerSecret(kubeconfig);
      context = kc.context;
      if (kc.nodeSelector) nodeSelector = kc.nodeSelector;
      cluster = deps.cluster(kubeconfig, context);
      const version = await cluster.version(20_000).catch((err: unknown) => {
        throw new UserError(`cannot reach the cluster of ${kc.source}: ${apiReason(err)}`, {
          hint: "check the kubeconfig's server and credentials (and kubeconfig.context), and that this machine can reach it",
        });
      });
      ctx.signal.throwIfAborted();
      const denied: string[] = [];
      for (const [verb, resource, group, clusterWide] of NEEDED)
        if (!(await cluster.canI(verb, resource, group, clusterWide ? undefined : "default")))
          denied.push(`${verb} ${resource}${group ? ` (${group})` : ""}`);
      if (denied.length)
        throw new UserError(`the kubeconfig's identity may not: ${denied.join(", ")} (RBAC)`, {
          hint: "bind it to a role that allows these in new namespaces (e.g. cluster-admin on a test cluster), or use another kubeconfig",
        });
      await checkNodes(cluster, ctx);
      ctx.saveInfra({
        state: "up",
        host: kc.source,
        // A source that provisions (gke) has set the window's start and price already.
        billing: { start: new Date().toISOString(), ...ctx.store.readManifest().infra?.billing },
        hostFacts: { kubernetes: version, ...(await nodeFacts(cluster)) },
      });
    },

    async deployArm(arm, ctx) {
      const s = stateOf(arm, ctx);
      const rehearsal = rehearsalOf(s.stack);
      const opts = renderOptionsOf(s.config, ctx.store.runId, rehearsal, {
        hfToken: hfToken !== undefined,
        nodeSelector,
      });
      const bound = bindPlanForKube(ctx.plan, arm, rehearsal);
      s.rendered = renderKubeArm(s.stack, {
        ...opts,
        experimentPlan: `${JSON.stringify(bound, null, 2)}\n`,
        datasets: readDatasetFiles(s.stack),
      });
      validateKubeObjects(s.rendered.objects);
      ctx.log.info(
        `${arm}: deploying ${s.rendered.objects.length} objects into namespace ${s.rendered.namespace}`,
      );
      const stack = await pulumiStack(
        arm,
        ctx,
        kubeArmProgram({
          objects: s.rendered.objects,
          kubeconfig,
          ...(context ? { context } : {}),
          ...(hfToken && !rehearsal ? { hfToken } : {}),
        }),
      );
      s.stackUp = true;
      await stack.up({ signal: ctx.signal, hardSignal: ctx.hardSignal, onOutput: out(ctx) });
      await waitEnginesHealthy(arm, s, ctx);
      await recordImages(arm, s, ctx);
    },

    async runArm(arm, steps, ctx) {
      const s = stateOf(arm, ctx);
      const ns = s.rendered?.namespace ?? nsOf(arm, ctx);
      const indices = steps.map((x) => x.index);
      const job = renderRunnerJob(
        s.stack,
        indices,
        renderOptionsOf(s.config, ctx.store.runId, rehearsalOf(s.stack), {
          hfToken: false,
          nodeSelector,
        }),
        { deadlineSec: 3600 * Math.max(1, steps.length), collectWaitSec: 600 },
      );
      const c = live();
      const name = runnerJobName(indices);
      await c.deleteJob(ns, name); // an interrupted attempt's Job of the same steps
      await waitGone(c, ns, `job-name=${name}`);
      await c.createJob(job);
      s.job = { name, collected: false };
      // Distributed load: shard 0's pod measures, logs the progress and holds the results.
      const parallel = (s.stack.runner.parallelism ?? 1) > 1;
      const pod = await waitRunnerPod(c, ns, name, parallel, ctx);
      s.job.pod = pod;
      const following = new AbortController();
      const logs = c
        .followLogs(
          ns,
          pod,
          RUNNER_CONTAINER,
          (l) => l.trim() && ctx.log.info(`${arm} runner: ${redactSecrets(l)}`),
          following.signal,
        )
        .catch((err) => ctx.log.debug(`runner log: ${errorMessage(err)}`));
      let code: number | undefined;
      let stopped: number | undefined;
      try {
        while (code === undefined) {
          if (ctx.signal.aborted && stopped === undefined) {
            // The pod's shell forwards TERM to the runner, which finishes writing what it has.
            stopped = Date.now();
            await c
              .exec(ns, pod, RUNNER_CONTAINER, ["/bin/sh", "-c", "kill -TERM 1"], undefined, 15_000)
              .catch(() => undefined);
          }
          if (stopped !== undefined && (Date.now() - stopped > 60_000 || ctx.hardSignal.aborted))
            break;
          code = await exitCode(c, ns, pod);
          if (code !== undefined) break;
          const j = await c.job(ns, name);
          // A failed follower shard is reported by shard 0, which goes on to write its exit code;
          // one that cannot even start would only show as shard 0's ready timeout, so say it now.
          const pods = parallel ? await c.pods(ns, `job-name=${name}`) : [];
          const lead = pods.find((p) => p.name === pod);
          const stuck = pods.find((p) => p.reasons.some((r) => CANNOT_START.test(r)));
          if (stuck)
            throw new UserError(
              `runner shard pod ${ns}/${stuck.name} cannot start: ${stuck.reasons.join("; ")}`,
              { hint: KIT_IMAGE_HINT },
            );
          if (!j || (!parallel && j.failed > 0) || (parallel && (!lead || lead.phase === "Failed")))
            throw new Error(
              `runner Job ${ns}/${name} ended before its runner did${j?.reason ? `: ${j.reason}` : ""}`,
            );
          await sleep(deps.pollMs);
        }
      } finally {
        following.abort();
        await logs;
      }
      if (stopped !== undefined)
        throw new UserError("interrupted; completed points are kept", { exitCode: 130 });
      if (code !== 0 && code !== RUNNER_SOME_INVALID) {
        const tail = (await c.logs(ns, pod, RUNNER_CONTAINER, 20_000))
          .split("\n")
          .slice(-15)
          .join("\n");
        throw new Error(`runner in ${ns}/${pod} exited ${code}:\n${redactSecrets(tail)}`);
      }
    },

    async collect(arm, ctx) {
      const s = stateOf(arm, ctx);
      if (!s.job?.pod || s.job.collected) return;
      const ns = s.rendered?.namespace ?? nsOf(arm, ctx);
      const c = live();
      const fetched = await copyPoints(c, ns, s.job.pod, arm, ctx);
      ctx.log.debug(`${arm}: ${fetched} point(s) copied home from ${s.job.pod}`);
      await c
        .exec(
          ns,
          s.job.pod,
          RUNNER_CONTAINER,
          ["touch", `${RESULTS_MOUNT}/${COLLECTED_FILE}`],
          undefined,
          15_000,
        )
        .catch(() => undefined);
      s.job.collected = true;
      // Every runner pod's log (each shard's, when distributed) before the Job takes them along.
      await saveRunnerLogs(c, ns, s.job.name, arm, ctx).catch((err) =>
        ctx.log.debug(`runner logs: ${errorMessage(err)}`),
      );
      await c.deleteJob(ns, s.job.name);
    },

    async undeployArm(arm, ctx) {
      const s = stateOf(arm, ctx);
      const ns = s.rendered?.namespace ?? nsOf(arm, ctx);
      if (cluster)
        await saveDiagnostics(cluster, ns, arm, ctx).catch((err) =>
          ctx.log.debug(`diagnostics: ${errorMessage(err)}`),
        );
      if (!s.stackUp) return;
      const stack = await pulumiStack(arm, ctx, async () => ({}));
      try {
        await stack.destroy({ onOutput: out(ctx), hardSignal: ctx.hardSignal });
        await stack.remove();
        s.stackUp = false;
      } catch (err) {
        // The label-matched delete in destroy() takes what Pulumi could not.
        ctx.log.warn(`${arm}: pulumi destroy of namespace ${ns} failed: ${errorMessage(err)}`);
      }
    },

    async destroy(ctx) {
      // No cluster to talk to (open() failed half-way, e.g. a quota refusal during `up`): what
      // the source created is still removed.
      if (!cluster) return source ? await source.close(ctx).catch(() => false) : true;
      ctx.saveInfra({ state: "destroying" });
      let clean = false;
      try {
        const deleted = await cluster.deleteNamespaces(runSelector(ctx.store.runId));
        if (deleted.length)
          ctx.log.info(`deleted namespaces the run still had: ${deleted.join(", ")}`);
        clean = await waitGone(cluster, undefined, runSelector(ctx.store.runId), 180_000);
      } catch (err) {
        ctx.log.error(`deleting the run's namespaces: ${apiReason(err)}`);
      }
      if (source)
        clean =
          (await source.close(ctx).catch((err: unknown) => {
            ctx.log.error(`removing the cluster: ${errorMessage(err)}`);
            return false;
          })) && clean;
      ctx.saveInfra({
        state: clean ? "destroyed" : "destroy-failed",
        billing: { ...ctx.store.readManifest().infra?.billing, end: new Date().toISOString() },
      });
      return clean;
    },

    async audit(ctx) {
      if (!source) return [];
      if (!cluster) return await source.audit(ctx);
      const inCluster = source.clusterRemains()
        ? (await cluster.labelled(runSelector(ctx.store.runId))).map((f) => ({
            kind: f.kind,
            name: f.namespace ? `${f.namespace}/${f.name}` : f.name,
          }))
        : [];
      return [...inCluster, ...(await source.audit(ctx))];
    },

    cleanupCommands(leftovers: readonly Leftover[]) {
      if (!leftovers.length) return [];
      const kube = leftovers.some((l) => !l.location)
        ? [
            `kubectl delete namespace -l ${runSelector(runId)}`,
            `kubectl get all,configmaps,secrets -A -l ${runSelector(runId)}`,
          ]
        : [];
      return [...kube, ...(source?.cleanupCommands?.(leftovers) ?? [])];
    },
  };

  async function checkNodes(c: KubeCluster, ctx: TargetContext): Promise<void> {
    const sel = nodeSelector;
    const nodes = await c.nodes(sel, first.kubeconfig.gpuResource).catch((err: unknown) => {
      ctx.log.warn(
        `cannot list nodes (${apiReason(err)}): node selector and GPUs are not checked before deploying`,
      );
      return undefined;
    });
    if (!nodes) return;
    const what = Object.keys(sel).length
      ? `kubeconfig.nodeSelector ${JSON.stringify(sel)}`
      : "the cluster";
    if (!nodes.some((n) => n.ready))
      throw new UserError(`${what}: no Ready node matches (${nodes.length} matching, none Ready)`, {
        hint: "fix kubeconfig.nodeSelector (kubectl get nodes --show-labels) or wait for the nodes",
      });
    if (Object.values(ctx.plan.arms).some(rehearsalOf)) return; // engine-sim asks for no GPU
    const ready = nodes.filter((n) => n.ready);
    const most = Math.max(0, ...ready.map((n) => n.gpus));
    const total = ready.reduce((t, n) => t + n.gpus, 0);
    const perArm = Object.values(ctx.plan.arms).map(
      (p) => new Set(p.engines.flatMap((e) => e.gpus)).size,
    );
    const atOnce = sideBySide ? perArm.reduce((a, b) => a + b, 0) : Math.max(...perArm);
    if (atOnce > total)
      throw new UserError(
        `${sideBySide ? `both arms side by side need ${atOnce}` : `an arm needs ${atOnce}`} ${first.kubeconfig.gpuResource}; the Ready nodes of ${what} offer ${total}`,
        {
          hint: sideBySide
            ? "add GPU nodes (gke.nodeCount), or run the arms one after the other with --no-interleave"
            : "add GPU nodes or lower replicas",
        },
      );
    for (const p of Object.values(ctx.plan.arms))
      for (const g of gpuGroups(p.engines)) {
        const need = new Set(g.flatMap((e) => e.gpus)).size;
        if (need > most)
          throw new UserError(
            `${p.stack}: engine ${kubeName(g[0]!.name)} needs ${need} ${first.kubeconfig.gpuResource} on one node; the most any Ready node of ${what} offers is ${most}`,
            {
              hint: "check the GPU device plugin (kubectl describe node), kubeconfig.gpuResource and the node selector",
            },
          );
      }
  }

  async function nodeFacts(c: KubeCluster): Promise<Record<string, string>> {
    const nodes = await c.nodes(nodeSelector, first.kubeconfig.gpuResource).catch(() => []);
    return {
      nodes:
        nodes.map((n) => `${n.name} (${n.kubeletVersion}, ${n.gpus} GPU)`).join("; ") || "unknown",
    };
  }

  /** Every engine's and the router's /health, polled through the API server; bounded, with reasons. */
  async function waitEnginesHealthy(arm: Arm, s: ArmState, ctx: TargetContext): Promise<void> {
    const c = live();
    const ns = s.rendered!.namespace;
    const services = [...s.stack.engines.map((e) => kubeName(e.name)), "router"];
    const pending = new Set(services);
    const deadline = Date.now() + s.rendered!.readyTimeoutSec * 1000;
    let unschedulableSince: number | undefined;
    let lastNote = 0;
    while (pending.size) {
      ctx.signal.throwIfAborted();
      await Promise.all(
        [...pending].map(async (svc) => {
          // The port by name: a Service whose port is named is proxied only as `<svc>:<port>`.
          const body = await c
            .serviceGet(ns, `${svc}:http`, "/health", 5000)
            .catch(() => undefined);
          if (body !== undefined) pending.delete(svc);
        }),
      );
      if (!pending.size) break;
      const pods = await c.pods(ns, `${LABEL.run}=${ctx.store.runId}`).catch(() => []);
      const stuck = pods.filter(
        (p) => p.phase === "Pending" && p.reasons.some((r) => /Unschedulable/.test(r)),
      );
      unschedulableSince = stuck.length ? (unschedulableSince ?? Date.now()) : undefined;
      const crashing = pods.filter((p) =>
        p.reasons.some((r) => /CrashLoopBackOff/.test(r) || CANNOT_START.test(r)),
      );
      const failNow =
        (unschedulableSince !== undefined &&
          Date.now() - unschedulableSince > deps.unschedulableMs) ||
        crashing.length > 0;
      if (failNow || Date.now() > deadline) {
        await saveDiagnostics(c, ns, arm, ctx).catch(() => undefined);
        const events = (await c.events(ns).catch(() => []))
          .filter((e) => / Warning /.test(e))
          .slice(-5);
        const bad = [...stuck, ...crashing].length
          ? [...stuck, ...crashing]
          : pods.filter((p) => !p.ready);
        throw new UserError(
          `${arm}: ${[...pending].join(", ")} not healthy ${failNow ? "and cannot become so" : `after ${s.rendered!.readyTimeoutSec} s`}:\n` +
            bad
              .map((p) => `  pod ${p.name} ${p.phase}: ${p.reasons.join("; ") || "not ready"}`)
              .join("\n") +
            (events.length
              ? `\n  last warnings:\n${events.map((e) => `    ${e}`).join("\n")}`
              : ""),
          { hint: `events and pod logs are in ${join(ctx.store.armDir(arm), "host")}` },
        );
      }
      if (Date.now() - lastNote > 30_000) {
        lastNote = Date.now();
        ctx.log.info(`${arm}: waiting for /health of ${[...pending].join(", ")}`);
      }
      await sleep(deps.pollMs);
    }
    ctx.log.info(`${arm}: every engine and the router answer /health`);
  }

  async function recordImages(arm: Arm, s: ArmState, ctx: TargetContext): Promise<void> {
    const pods = await live().pods(s.rendered!.namespace, `${LABEL.run}=${ctx.store.runId}`);
    const images = pods.flatMap((p) =>
      p.images.map((i) => ({
        service: `${p.name}/${i.container}`,
        image: i.image,
        id: i.imageID,
        repoDigests: /@sha256:/.test(i.imageID)
          ? [i.imageID.replace(/^docker-pullable:\/\//, "")]
          : [],
      })),
    );
    await writeFileAtomic(
      join(ctx.store.armDir(arm), DEPLOYED_IMAGES_FILE),
      `${JSON.stringify(images, null, 2)}\n`,
    );
  }

  /** The runner's pod (shard 0's of an indexed Job: named `<job>-0-<suffix>`), once it runs. */
  async function waitRunnerPod(
    c: KubeCluster,
    ns: string,
    job: string,
    indexed: boolean,
    ctx: TargetContext,
  ): Promise<string> {
    const deadline = Date.now() + 300_000;
    for (;;) {
      ctx.signal.throwIfAborted();
      const pods = await c.pods(ns, `job-name=${job}`);
      const p = indexed ? pods.find((x) => x.name.startsWith(`${job}-0-`)) : pods[0];
      if (p && (p.phase === "Running" || p.phase === "Succeeded" || p.phase === "Failed"))
        return p.name;
      if (p?.reasons.some((r) => CANNOT_START.test(r)))
        throw new UserError(`runner pod ${ns}/${p.name} cannot start: ${p.reasons.join("; ")}`, {
          hint: KIT_IMAGE_HINT,
        });
      if (Date.now() > deadline)
        throw new Error(
          `runner pod of Job ${ns}/${job} did not start in 300 s: ${p ? p.reasons.join("; ") : "no pod"}`,
        );
      await sleep(deps.pollMs);
    }
  }

  async function exitCode(c: KubeCluster, ns: string, pod: string): Promise<number | undefined> {
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(b, _e, cb) {
        chunks.push(Buffer.from(b));
        cb();
      },
    });
    const r = await c
      .exec(ns, pod, RUNNER_CONTAINER, ["cat", `${RESULTS_MOUNT}/${EXIT_CODE_FILE}`], sink, 15_000)
      .catch(() => undefined);
    if (r?.code !== 0) return undefined;
    const n = Number(Buffer.concat(chunks).toString("utf8").trim());
    return Number.isInteger(n) ? n : undefined;
  }

  /**
   * The arm's points out of the runner pod (tar over exec) into a staging folder, then each
   * completed point (point.json written last) renamed into the run store; returns how many.
   */
  async function copyPoints(
    c: KubeCluster,
    ns: string,
    pod: string,
    arm: Arm,
    ctx: TargetContext,
  ): Promise<number> {
    const staging = join(ctx.store.armDir(arm), ".incoming");
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    const tar = spawn("tar", ["-x", "-C", staging], { stdio: ["pipe", "ignore", "pipe"] });
    let tarErr = "";
    tar.stderr.on("data", (b: Buffer) => {
      tarErr += b.toString("utf8");
    });
    const tarDone = new Promise<number>((res) => tar.on("close", (code) => res(code ?? 1)));
    const src = `${RESULTS_MOUNT}/${ctx.store.runId}/${arm}`;
    const r = await c.exec(
      ns,
      pod,
      RUNNER_CONTAINER,
      ["/bin/sh", "-c", `cd ${src} 2>/dev/null && tar -cf - points || tar -cf - -T /dev/null`],
      tar.stdin,
      300_000,
    );
    tar.stdin.end();
    const tarCode = await tarDone;
    if (r.code !== 0 || tarCode !== 0)
      throw new Error(
        `copying ${ns}/${pod}:${src}: ${r.stderr || tarErr || `tar exited ${tarCode}`}`,
      );
    let n = 0;
    const points = join(staging, "points");
    for (const label of existsSync(points) ? await readdir(points) : []) {
      if (!existsSync(join(points, label, "point.json"))) continue;
      const dest = join(ctx.store.armDir(arm), "points", label);
      if (existsSync(join(dest, "point.json"))) continue;
      await rm(dest, { recursive: true, force: true });
      await mkdir(join(ctx.store.armDir(arm), "points"), { recursive: true });
      await rename(join(points, label), dest);
      n++;
    }
    await rm(staging, { recursive: true, force: true });
    return n;
  }
}

/** Waits until nothing matches the selector (a namespace's pods, or a run's namespaces); false when time ran out. */
async function waitGone(
  c: KubeCluster,
  ns: string | undefined,
  selector: string,
  timeoutMs = 60_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = ns ? await c.pods(ns, selector).catch(() => []) : await c.labelled(selector);
    if (!left.length) return true;
    if (Date.now() > deadline) return false;
    await sleep(1000);
  }
}

/** The runner Job's pods' logs into `<arm>/host/runner-<job>.log` (secrets redacted). */
async function saveRunnerLogs(
  c: KubeCluster,
  ns: string,
  job: string,
  arm: Arm,
  ctx: TargetContext,
): Promise<void> {
  const parts: string[] = [];
  for (const p of await c.pods(ns, `job-name=${job}`))
    parts.push(
      `===== ${p.name} (${p.phase})`,
      await c.logs(ns, p.name, RUNNER_CONTAINER, 1_000_000),
    );
  if (parts.length)
    await writeFileAtomic(
      join(ctx.store.armDir(arm), "host", `runner-${job}.log`),
      redactSecrets(`${parts.join("\n")}\n`),
    );
}

/** Events and every pod's log of an arm's namespace into its host/ folder (secrets redacted). */
async function saveDiagnostics(
  c: KubeCluster,
  ns: string,
  arm: Arm,
  ctx: TargetContext,
): Promise<void> {
  const events = await c.events(ns);
  const pods = await c.pods(ns, `${LABEL.run}=${ctx.store.runId}`);
  const logs: string[] = [];
  for (const p of pods)
    for (const i of p.images.length ? p.images : [{ container: "" }]) {
      if (!i.container) continue;
      logs.push(
        `===== ${p.name}/${i.container} (${p.phase}${p.reasons.length ? `; ${p.reasons.join("; ")}` : ""})`,
      );
      logs.push(await c.logs(ns, p.name, i.container, 1_000_000));
    }
  if (!events.length && !logs.length) return;
  await writeFileAtomic(
    join(ctx.store.armDir(arm), EVENTS_FILE),
    redactSecrets(`${events.join("\n")}\n`),
  );
  await writeFileAtomic(
    join(ctx.store.armDir(arm), PODS_LOG_FILE),
    redactSecrets(`${logs.join("\n")}\n`),
  );
}
