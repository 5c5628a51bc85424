/**
 * The host side of every VM-like target (gcp-vm, ssh): on a Docker host reached over SSH, an arm is
 * a compose project (engines + router + a runner service). Deploy uploads the bundle with the
 * experiment plan bound to the project's addresses; the runner runs as a container next to the
 * engines and writes `results/<arm>/points/...`; collect downloads that folder into the run store.
 */
import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { setTimeout } from "node:timers/promises";
import { readDatasetFiles } from "../compose/datasets.ts";
import { deployBundle, projectDir, undeployBundle } from "../compose/remote.ts";
import {
  composeEndpoints,
  datasetPathsInContainer,
  RESULTS_DIR,
  renderCompose,
  runnerArgv,
} from "../compose/render.ts";
import { DEFAULT_REMOTE_ROOT } from "../infra/startup-script.ts";
import { writeFileAtomic } from "../lib/atomic.ts";
import { redactSecrets } from "../lib/redact.ts";
import { type RemoteHost, shQuote } from "../lib/ssh/ssh.ts";
import { DEPLOYED_IMAGES_FILE, type DeployedImage, HOST_LOG_FILE } from "../results/store.ts";
import type { ArmEndpoints, ExperimentPlan, ExperimentStep } from "../runner/plan-file.ts";
import { RUNNER_SOME_INVALID } from "../runner/run-arm.ts";
import type { Arm, DatasetPlan, StackPlan } from "../stacks/plan-types.ts";
import type { Leftover, TargetContext } from "./types.ts";

export { DEFAULT_REMOTE_ROOT };

const HF_CACHE_VOLUME_NAME = "inferbench-hf-cache";

export interface ComposeHostOptions {
  remoteRoot?: string;
  /** Swap vLLM for engine-sim (labelled EMULATED); default: when the plan is emulated. */
  rehearsal?: boolean;
  /** uid:gid of the SSH user, so the runner's files belong to it. */
  runnerUser?: string;
  hfToken?: string;
  allowUnpinnedImages?: boolean;
}

/** Rewrites file datasets to where the bundle mounts them inside the runner container. */
function datasetInContainer(d: DatasetPlan, paths: Readonly<Record<string, string>>): DatasetPlan {
  if (!("path" in d)) return d;
  const moved = { ...d, path: paths[d.path] ?? d.path };
  if (moved.kind === "servegen" && moved.datasetPath !== undefined)
    moved.datasetPath = paths[moved.datasetPath] ?? moved.datasetPath;
  return moved;
}

/**
 * The experiment plan as a runner next to one arm's servers sees it (pure): emulated when
 * rehearsed, file datasets moved to where they are mounted, the arm's endpoints bound.
 */
export function bindPlan(
  plan: ExperimentPlan,
  arm: Arm,
  rehearsal: boolean,
  where: { endpoints: ArmEndpoints; datasetPaths: Readonly<Record<string, string>> },
): ExperimentPlan {
  return {
    ...plan,
    emulated: plan.emulated || rehearsal,
    workload: {
      ...plan.workload,
      dataset: datasetInContainer(plan.workload.dataset, where.datasetPaths),
    },
    endpoints: { ...plan.endpoints, [arm]: where.endpoints },
  };
}

/** The experiment plan as the runner in this arm's compose project sees it (pure). */
export function bindPlanForCompose(
  plan: ExperimentPlan,
  arm: Arm,
  rehearsal: boolean,
): ExperimentPlan {
  const stack = plan.arms[arm]!;
  return bindPlan(plan, arm, rehearsal, {
    endpoints: composeEndpoints(stack),
    datasetPaths: datasetPathsInContainer(stack),
  });
}

/** `docker compose run` of the runner for these steps; its exit code is the runner's. */
export function runnerRunCommand(
  dir: string,
  project: string,
  arm: Arm,
  runId: string,
  steps: readonly number[],
): string {
  const argv = [...runnerArgv(arm, runId), "--steps", steps.join(",")];
  return `cd ${shQuote(dir)} && mkdir -p ${RESULTS_DIR} && docker compose -p ${shQuote(project)} --profile runner run --rm --no-deps --name ${shQuote(runnerContainer(project, runId))} runner ${argv.map(shQuote).join(" ")}`;
}

/** The runner's container name: known, so an interrupted runner can be removed by name. */
export function runnerContainer(project: string, runId: string): string {
  return `${project}-runner-${runId}`;
}

/** Completed points under an arm's remote results folder: the runner writes point.json last. */
export function completedPointsCommand(remote: string): string {
  return `cd ${shQuote(remote)} 2>/dev/null && find points -mindepth 2 -maxdepth 2 -name point.json`;
}

/**
 * Brings home every completed point not yet in the local arm folder, one point at a time into a
 * staging folder renamed into place, so a download cut short (the host died) never leaves a
 * point.json without the files beside it. Returns the points fetched.
 */
export async function fetchCompletedPoints(
  h: RemoteHost,
  remote: string,
  local: string,
): Promise<string[]> {
  const r = await h.exec(completedPointsCommand(remote), { timeoutMs: 60_000 });
  if (r.code !== 0) return []; // nothing measured yet
  const fetched: string[] = [];
  for (const line of r.stdout.split("\n")) {
    const rel = posix.dirname(line.trim());
    if (!line.trim() || rel === "." || rel.includes("..")) continue;
    const dest = join(local, rel);
    if (existsSync(join(dest, "point.json"))) continue;
    const staging = join(local, ".incoming", rel);
    await rm(staging, { recursive: true, force: true });
    await h.download(posix.join(remote, rel), staging);
    await rm(dest, { recursive: true, force: true }); // an incomplete copy from an earlier attempt
    await mkdir(dirname(dest), { recursive: true });
    await rename(staging, dest);
    fetched.push(rel);
  }
  await rm(join(local, ".incoming"), { recursive: true, force: true });
  return fetched;
}

/** service, image reference and image id of every container of the project, one per line. */
export function containerImagesCommand(dir: string, project: string): string {
  return `cd ${shQuote(dir)} && ids=$(docker compose -p ${shQuote(project)} ps -aq) && [ -n "$ids" ] && docker inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{.Config.Image}} {{.Image}}' $ids`;
}

/** Pure: `containerImagesCommand` + `docker image inspect` output → what each service ran. */
const parseOrUndefined = (t: string): unknown => {
  try {
    return JSON.parse(t) as unknown;
  } catch {
    return undefined;
  }
};

export function parseDeployedImages(containers: string, inspect: string): DeployedImage[] {
  const digests = new Map<string, string[]>();
  const labelsOf = new Map<string, Record<string, string>>();
  for (const line of inspect.split("\n")) {
    const m = /^(\S+) (.*)$/.exec(line.trim());
    if (!m) continue;
    // `<id> <RepoDigests json> <Labels json>`: the list ends at its first "]" (digests hold none).
    const rest = m[2]!;
    const cut = rest.startsWith("null") ? 4 : rest.indexOf("]") + 1;
    const d = cut > 0 ? parseOrUndefined(rest.slice(0, cut)) : undefined;
    digests.set(m[1]!, Array.isArray(d) ? d.filter((x): x is string => typeof x === "string") : []);
    // What the kit's own images say of themselves (the built managed image: its base, kvcached).
    const l = parseOrUndefined(rest.slice(Math.max(cut, 0)).trim());
    const ours = Object.entries(l && typeof l === "object" ? (l as Record<string, unknown>) : {})
      .filter(([k, v]) => k.startsWith("dev.inferbench.") && typeof v === "string")
      .map(([k, v]) => [k, v as string]);
    if (ours.length) labelsOf.set(m[1]!, Object.fromEntries(ours));
  }
  const out = new Map<string, DeployedImage>();
  for (const line of containers.split("\n")) {
    const [service, image, id] = line.trim().split(/\s+/);
    if (!service || !image || !id) continue;
    const labels = labelsOf.get(id);
    out.set(service, {
      service,
      image,
      id,
      repoDigests: digests.get(id) ?? [],
      ...(labels ? { labels } : {}),
    });
  }
  return [...out.values()].sort((a, b) => a.service.localeCompare(b.service));
}

/** The project's service logs, capped (vLLM logs every request at debug). */
export const HOST_LOG_CAP_BYTES = 5_000_000;
export function composeAllLogsCommand(dir: string, project: string): string {
  return `cd ${shQuote(dir)} && docker compose -p ${shQuote(project)} logs --no-color --timestamps 2>&1 | tail -c ${HOST_LOG_CAP_BYTES}`;
}

/** How often a running arm's completed points are looked for on the host. */
export const FOLLOW_INTERVAL_MS = 2000;

/**
 * While the runner runs: each completed point is brought home as soon as it exists, so a host that
 * dies mid-block costs only the point in flight. Errors (a network drop) are logged and retried.
 */
async function followPoints(
  h: RemoteHost,
  remote: string,
  local: string,
  stop: AbortSignal,
  ctx: TargetContext,
): Promise<void> {
  while (!stop.aborted) {
    await setTimeout(FOLLOW_INTERVAL_MS, undefined, { signal: stop }).catch(() => undefined);
    if (stop.aborted) return;
    try {
      for (const p of await fetchCompletedPoints(h, remote, local))
        ctx.log.debug(`${p}: brought home while the runner goes on`);
    } catch (err) {
      ctx.log.debug(`following points: ${(err as Error).message}`);
    }
  }
}

export interface ComposeHost {
  deployArm(arm: Arm, ctx: TargetContext): Promise<void>;
  runArm(arm: Arm, steps: readonly ExperimentStep[], ctx: TargetContext): Promise<void>;
  collect(arm: Arm, ctx: TargetContext): Promise<void>;
  undeployArm(arm: Arm, ctx: TargetContext): Promise<void>;
  /** Containers, networks and volumes labelled with this kit's projects still on the host. */
  audit(): Promise<Leftover[]>;
}

export function composeHost(host: () => RemoteHost, opts: ComposeHostOptions = {}): ComposeHost {
  const root = opts.remoteRoot ?? DEFAULT_REMOTE_ROOT;
  const projectOf = (arm: Arm) => `inferbench-${arm}`;
  const dirOf = (arm: Arm) => projectDir(root, projectOf(arm));
  const rehearsalOf = (p: StackPlan) => opts.rehearsal ?? p.emulated;
  const out = (ctx: TargetContext) => (s: string) => ctx.log.debug(s.trimEnd());

  return {
    async deployArm(arm, ctx) {
      const stack = ctx.plan.arms[arm]!;
      const rehearsal = rehearsalOf(stack);
      const bound = bindPlanForCompose(ctx.plan, arm, rehearsal);
      const rendered = renderCompose(stack, {
        rehearsal: rehearsal ? {} : false,
        datasets: readDatasetFiles(stack),
        experimentPlan: `${JSON.stringify(bound, null, 2)}\n`,
        runId: ctx.store.runId,
        ...(opts.runnerUser ? { runnerUser: opts.runnerUser } : {}),
        ...(opts.allowUnpinnedImages ? { allowUnpinnedImages: true } : {}),
      });
      // What was deployed stays with the run (hf.env is never part of it).
      for (const [f, c] of Object.entries(rendered.files))
        await writeFileAtomic(join(ctx.store.armDir(arm), "bundle", f), c);
      ctx.onProgress?.(
        `${arm}: deploying ${stack.engines.length} ${rehearsal ? "emulated " : ""}engines + router (compose project ${rendered.projectName})`,
      );
      await deployBundle(host(), {
        remoteRoot: root,
        projectName: rendered.projectName,
        files: rendered.files,
        ...(opts.hfToken ? { hfToken: opts.hfToken } : {}),
        waitTimeoutSec: rendered.waitTimeoutSec,
        signal: ctx.signal,
        onOutput: out(ctx),
      });
      await recordImages(arm, ctx).catch((err) =>
        ctx.log.warn(`${arm}: could not record the images that run: ${(err as Error).message}`),
      );
    },
    async runArm(arm, steps, ctx) {
      const local = ctx.store.armDir(arm);
      await mkdir(local, { recursive: true });
      const following = new AbortController();
      const follower = followPoints(host(), remoteResults(arm, ctx), local, following.signal, ctx);
      try {
        await runOnHost(arm, steps, ctx);
      } finally {
        following.abort();
        await follower;
      }
    },
    async collect(arm, ctx) {
      const local = ctx.store.armDir(arm);
      await mkdir(local, { recursive: true });
      const fetched = await fetchCompletedPoints(host(), remoteResults(arm, ctx), local);
      ctx.log.debug(`${arm}: ${fetched.length} more point(s) → ${local}`);
    },
    async undeployArm(arm, ctx) {
      // The logs come home whatever happened: the host may be gone by the time anyone looks.
      await keepLogs(arm, ctx).catch((err) =>
        ctx.log.warn(`${arm}: could not bring the service logs home: ${(err as Error).message}`),
      );
      await undeployBundle(host(), projectOf(arm));
    },
    audit,
  };

  async function recordImages(arm: Arm, ctx: TargetContext): Promise<void> {
    const c = await host().exec(containerImagesCommand(dirOf(arm), projectOf(arm)), {
      timeoutMs: 60_000,
    });
    if (c.code !== 0 || !c.stdout.trim()) return;
    const ids = [
      ...new Set(
        c.stdout
          .split("\n")
          .map((l) => l.trim().split(/\s+/)[2])
          .filter(Boolean),
      ),
    ];
    const i = await host().exec(
      `docker image inspect --format '{{.Id}} {{json .RepoDigests}} {{json .Config.Labels}}' ${ids.map((x) => shQuote(x!)).join(" ")}`,
      { timeoutMs: 60_000 },
    );
    const images = parseDeployedImages(c.stdout, i.code === 0 ? i.stdout : "");
    await writeFileAtomic(
      join(ctx.store.armDir(arm), DEPLOYED_IMAGES_FILE),
      `${JSON.stringify(images, null, 2)}\n`,
    );
  }

  async function keepLogs(arm: Arm, ctx: TargetContext): Promise<void> {
    const r = await host().exec(composeAllLogsCommand(dirOf(arm), projectOf(arm)), {
      timeoutMs: 120_000,
    });
    // Registered secrets (the HF token, keys) never reach the run folder, even if a service logs one.
    if (r.code === 0 && r.stdout)
      await writeFileAtomic(join(ctx.store.armDir(arm), HOST_LOG_FILE), redactSecrets(r.stdout));
  }

  /** Per run id: a host that served an earlier run never hands its points to this one. */
  function remoteResults(arm: Arm, ctx: TargetContext): string {
    return posix.join(dirOf(arm), RESULTS_DIR, ctx.store.runId, arm);
  }

  async function runOnHost(arm: Arm, steps: readonly ExperimentStep[], ctx: TargetContext) {
    const cmd = runnerRunCommand(
      dirOf(arm),
      projectOf(arm),
      arm,
      ctx.store.runId,
      steps.map((s) => s.index),
    );
    let r: Awaited<ReturnType<RemoteHost["exec"]>>;
    try {
      r = await host().exec(cmd, {
        signal: ctx.signal,
        onStdout: (s) => ctx.log.info(s.trimEnd()),
        onStderr: out(ctx),
      });
    } catch (err) {
      // Closing the SSH channel does not stop `compose run` on the host: remove its container.
      if (ctx.signal.aborted)
        await host()
          .exec(`docker rm -f ${shQuote(runnerContainer(projectOf(arm), ctx.store.runId))}`, {
            timeoutMs: 60_000,
          })
          .catch((e) => ctx.log.warn(`removing the interrupted runner: ${(e as Error).message}`));
      throw err;
    }
    ctx.signal.throwIfAborted();
    // Exit 3: every point measured, some INVALID — evidence the report marks, not a failure.
    if (r.code !== 0 && r.code !== RUNNER_SOME_INVALID)
      throw new Error(
        `the runner failed on the host (exit ${r.code ?? r.signal}) for ${arm}: ${r.stderr.slice(-1500)}`,
      );
  }

  async function audit(): Promise<Leftover[]> {
    const left: Leftover[] = [];
    for (const [kind, cmd] of [
      [
        "container",
        "docker ps -a --filter label=com.docker.compose.project --format '{{.Label \"com.docker.compose.project\"}} {{.Names}}'",
      ],
      [
        "network",
        "docker network ls --filter label=com.docker.compose.project --format '{{.Label \"com.docker.compose.project\"}} {{.Name}}'",
      ],
      [
        "volume",
        "docker volume ls --filter label=com.docker.compose.project --format '{{.Label \"com.docker.compose.project\"}} {{.Name}}'",
      ],
    ] as const) {
      const r = await host().exec(cmd);
      if (r.code !== 0) throw new Error(`audit: ${cmd} failed: ${r.stderr.slice(-300)}`);
      for (const line of r.stdout.split("\n")) {
        const [project, name] = line.trim().split(/\s+/);
        // The shared weights cache is the host's, not the run's: it is kept on purpose.
        if (project?.startsWith("inferbench") && name && name !== HF_CACHE_VOLUME_NAME)
          left.push({ kind, name });
      }
    }
    return left;
  }
}
