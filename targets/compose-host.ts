/**
 * The host side of every VM-like target (gcp-vm, ssh): on a Docker host reached over SSH, an arm is
 * a compose project (engines + router + a runner service). Deploy uploads the bundle with the
 * experiment plan bound to the project's addresses; the runner runs as a container next to the
 * engines and writes `results/<arm>/points/...`; collect downloads that folder into the run store.
 */
import { mkdir } from "node:fs/promises";
import { join, posix } from "node:path";
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
import { type RemoteHost, shQuote } from "../lib/ssh/ssh.ts";
import type { ExperimentPlan, ExperimentStep } from "../runner/plan-file.ts";
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

/** The experiment plan as the runner in this arm's project sees it (pure). */
export function bindPlanForCompose(
  plan: ExperimentPlan,
  arm: Arm,
  rehearsal: boolean,
): ExperimentPlan {
  const stack = plan.arms[arm]!;
  return {
    ...plan,
    emulated: plan.emulated || rehearsal,
    workload: {
      ...plan.workload,
      dataset: datasetInContainer(plan.workload.dataset, datasetPathsInContainer(stack)),
    },
    endpoints: { ...plan.endpoints, [arm]: composeEndpoints(stack) },
  };
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

export interface ComposeHost {
  deployArm(arm: Arm, ctx: TargetContext): Promise<void>;
  runArm(arm: Arm, steps: readonly ExperimentStep[], ctx: TargetContext): Promise<void>;
  collect(arm: Arm, ctx: TargetContext): Promise<void>;
  undeployArm(arm: Arm, ctx: TargetContext): Promise<void>;
  /** Containers, networks and volumes labelled with this kit's projects still on the host. */
  audit(ctx: TargetContext): Promise<Leftover[]>;
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
    },
    async runArm(arm, steps, ctx) {
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
    },
    async collect(arm, ctx) {
      const local = ctx.store.armDir(arm);
      await mkdir(local, { recursive: true });
      // Per run id: a host that served an earlier run never hands its points to this one.
      const remote = posix.join(dirOf(arm), RESULTS_DIR, ctx.store.runId, arm);
      const probe = await host().exec(`test -d ${shQuote(remote)}`);
      if (probe.code !== 0) return; // nothing measured yet
      const files = await host().download(remote, local);
      ctx.log.debug(`${arm}: ${files.length} files → ${local}`);
    },
    async undeployArm(arm) {
      await undeployBundle(host(), projectOf(arm));
    },
    async audit() {
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
    },
  };
}
