/** `inferbench plan`: config → plan, printed as a summary, as JSON, or written to a folder. */
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { writeFileAtomicSync } from "../../lib/atomic.ts";
import { logger } from "../../lib/logger.ts";
import { redactObject } from "../../lib/redact.ts";
import { renderTable } from "../../lib/table.ts";
import { loadPointText } from "../../stacks/load-point.ts";
import type { StackPlan } from "../../stacks/plan-types.ts";
import type { StackConfig } from "../../stacks/schema.ts";
import { planStack } from "../../targets/plan-stack.ts";
import { addStackOptions, parseOptions, stackOptionsSchema } from "../options.ts";

const optionsSchema = stackOptionsSchema.extend({
  json: z.boolean().default(false),
  out: z.string().min(1).optional(),
});

export function registerPlan(program: Command): void {
  addStackOptions(
    program
      .command("plan")
      .description(
        "Validate a stack and show what would run: engines × GPUs × ports, the router policy, the\n" +
          "workload, and for cloud targets an hourly cost estimate. Nothing is provisioned.",
      ),
  )
    .option("--json", "print the plan as JSON on stdout (nothing else on stdout)")
    .option("--out <dir>", "write plan.json (and rendered deployment files) into <dir>")
    .addHelpText(
      "after",
      "\nExamples:\n  inferbench plan --stack local\n  inferbench plan --stack gcp-managed --set mode=baseline\n  inferbench plan --stack local --json > plan.json\n",
    )
    .action(async (raw: unknown) => {
      const opts = parseOptions(optionsSchema, raw);
      const { plan, loaded } = planStack(opts.stack, opts.set);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatPlanSummary(plan)}\n`);
      }
      if (opts.out) {
        // Everything is rendered before anything is written: a refusal leaves no folder behind.
        const files = await planOutFiles(plan, opts.stack, opts.set, loaded.config);
        const dir = resolve(opts.out);
        for (const [rel, content] of Object.entries(files))
          writeFileAtomicSync(join(dir, rel), content);
        logger.info(
          `wrote ${Object.keys(files)
            .map((f) => join(dir, f))
            .join(", ")}`,
        );
      }
    });
}

/**
 * The files `plan --out` writes, keyed by path in the folder: plan.json, and for gcp-vm the
 * compose project with the runner's plan for this one arm bound to the project's addresses.
 * Throws (refusing an unpinned image, an unreadable dataset) before anything is on disk.
 */
export async function planOutFiles(
  plan: StackPlan,
  stack: string,
  overrides: string[],
  config: StackConfig,
): Promise<Record<string, string>> {
  const files: Record<string, string> = {
    "plan.json": `${JSON.stringify(redactObject(plan), null, 2)}\n`,
  };
  if (plan.target === "kubeconfig" || plan.target === "gke")
    return { ...(await kubeOutFiles(plan, stack, overrides, config)), ...files };
  if (plan.target !== "gcp-vm") return files;
  const { renderCompose } = await import("../../compose/render.ts");
  const { readDatasetFiles } = await import("../../compose/datasets.ts");
  const { bindPlanForCompose } = await import("../../targets/compose-host.ts");
  const experiment = await oneArmExperiment(plan, stack, overrides);
  const bound = bindPlanForCompose(experiment, plan.mode, plan.emulated);
  const rendered = renderCompose(plan, {
    allowUnpinnedImages: config.run.allowUnpinnedImages,
    datasets: readDatasetFiles(plan),
    experimentPlan: `${JSON.stringify(redactObject(bound), null, 2)}\n`,
  });
  // The command's own plan.json (redacted) wins over the renderer's copy.
  return { ...rendered.files, ...files };
}

/** The experiment plan of one stack's arm, as `plan --out` renders it for a runner. */
async function oneArmExperiment(plan: StackPlan, stack: string, overrides: string[]) {
  const { experimentPlan } = await import("../../experiments/plan.ts");
  return experimentPlan({
    stacks: [stack],
    overrides,
    quick: false,
    plans: [plan],
    interleave: true,
  });
}

/**
 * A Kubernetes stack's objects for its arm as one `kubectl apply`-able file (validated against the
 * Kubernetes schema), plus the runner Job of the arm's first block. The run id is a placeholder:
 * a real run names its namespaces after its own id. The HF token Secret is never rendered.
 */
async function kubeOutFiles(
  plan: StackPlan,
  stack: string,
  overrides: string[],
  config: StackConfig,
): Promise<Record<string, string>> {
  const { stringify } = await import("yaml");
  const { readDatasetFiles } = await import("../../compose/datasets.ts");
  const { renderKubeArm, renderRunnerJob } = await import("../../kube/render.ts");
  const { validateKubeObjects } = await import("../../kube/validate.ts");
  const { bindPlanForKube } = await import("../../targets/kube/bind.ts");
  const { renderOptionsOf } = await import("../../targets/kube/index.ts");
  const experiment = await oneArmExperiment(plan, stack, overrides);
  const rehearsal = plan.emulated || config.rehearsal;
  const opts = renderOptionsOf(config, "plan", rehearsal, {
    hfToken: config.hfToken !== undefined,
  });
  const bound = bindPlanForKube(experiment, plan.mode, rehearsal);
  const arm = renderKubeArm(plan, {
    ...opts,
    experimentPlan: `${JSON.stringify(redactObject(bound), null, 2)}\n`,
    datasets: readDatasetFiles(plan),
  });
  const job = renderRunnerJob(
    plan,
    experiment.steps.map((s) => s.index),
    opts,
    {
      deadlineSec: 3600 * Math.max(1, experiment.steps.length),
    },
  );
  validateKubeObjects([...arm.objects, job]);
  const yaml = (objs: unknown[]) => objs.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
  const header = `# Rendered by inferbench from stack "${plan.stack}" (arm ${plan.mode}${rehearsal ? ", rehearsal on engine-sim — emulated numbers" : ""}); run id "plan" stands for the run's own.\n`;
  return {
    "kube/objects.yaml": header + yaml(arm.objects),
    "kube/runner-job.yaml": header + yaml([job]),
  };
}

export function formatPlanSummary(plan: StackPlan): string {
  if (plan.endpoint) return endpointSummary(plan, plan.endpoint);
  const lines: string[] = [];
  const host = plan.hosts[0]!;
  lines.push(
    `stack ${plan.stack}: target ${plan.target}, arm ${plan.mode}${plan.emulated ? " (EMULATED engines: engine-sim)" : ""}`,
  );
  lines.push(
    `host ${host.name}: ${host.gpuIds.length} × ${host.gpuType} (GPU ids ${host.gpuIds.join(",")})`,
  );
  lines.push("");
  lines.push(
    renderTable(
      ["engine", "model", "gpus", "port", "image", "kvcached", "prefix-cache", "gpu-mem-util"],
      plan.engines.map((e) => [
        e.name,
        e.model,
        e.gpus.join(","),
        String(e.port),
        shortImage(e.image),
        e.kvcached ? "yes" : "no",
        e.prefixCaching
          ? e.emulator.maxCachedTokens
            ? `≤${e.emulator.maxCachedTokens} tok`
            : "on"
          : "off",
        e.gpuMemoryUtilization === undefined ? "on demand" : String(e.gpuMemoryUtilization),
      ]),
    ),
  );
  const kvEnv = plan.engines.find((e) => e.kvcached)?.env;
  if (kvEnv) {
    lines.push("");
    lines.push(
      `engine env (per engine): ${Object.entries(kvEnv)
        .map(([k, v]) =>
          k === "KVCACHED_IPC_NAME" ? `${k}=<distinct per engine, e.g. ${v}>` : `${k}=${v}`,
        )
        .join(" ")}`,
    );
  }
  lines.push("");
  const backends = Object.entries(plan.router.backends)
    .map(([m, bs]) => `${m} → ${bs.map((b) => b.engine).join(", ")}`)
    .join("; ");
  lines.push(
    `router: ${plan.router.policy} on port ${plan.router.port}, poll ${plan.router.pollIntervalMs} ms; ${backends}`,
  );
  lines.push(workloadLine(plan));
  if (plan.cost) {
    lines.push(
      `cost (ESTIMATE): ~$${plan.cost.hourly.toFixed(2)}/hour, at most ~$${plan.cost.maxRunCost.toFixed(2)} before the dead-man switch; ${plan.cost.basis}. Source: ${plan.cost.source}`,
    );
  }
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  return lines.join("\n");
}

function workloadLine(plan: StackPlan): string {
  const w = plan.runner.workload;
  const points = plan.runner.loadPoints.map(loadPointText).join(", ");
  return `workload: ${w.dataset.kind} dataset, ${w.endpointType}${w.streaming ? " streaming" : ""}, output ${w.outputTokensMean ?? "model-decided"} tokens${w.ignoreEos ? " (ignore_eos)" : ""}; load points: ${points}; repeats ${plan.runner.repeats}`;
}

/** A running endpoint's plan: what is measured and from where (nothing is deployed). */
function endpointSummary(plan: StackPlan, ep: NonNullable<StackPlan["endpoint"]>): string {
  const lines = [
    `stack ${plan.stack}: target endpoint, arm ${plan.mode}${plan.emulated ? " (EMULATED engines: engine-sim)" : ""}; nothing is deployed or torn down`,
    `endpoint: ${ep.url} (ready: ${ep.readyPath}${ep.apiKeyEnv ? `; key from $${ep.apiKeyEnv}` : "; no key"})`,
    `engines scraped: ${ep.engineUrls.length ? ep.engineUrls.join(", ") : "none"}`,
    `models: ${plan.runner.workload.models.join(", ")}`,
    workloadLine(plan),
  ];
  if (plan.cost)
    lines.push(`cost (ESTIMATE): ~$${plan.cost.hourly.toFixed(2)}/hour; ${plan.cost.basis}`);
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  return lines.join("\n");
}

function shortImage(image: string): string {
  const at = image.indexOf("@sha256:");
  return at === -1
    ? `${image} (UNPINNED)`
    : `${image.slice(0, at)}@sha256:${image.slice(at + 8, at + 20)}…`;
}
