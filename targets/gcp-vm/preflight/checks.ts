/**
 * Preflight for cloud runs: everything that can be known before spending money. Each check is a
 * pure function of what it is given (plans, environment, file existence, PATH lookup), so the
 * whole preflight is unit-tested without a cloud.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { sshRangeProblems, WHERE_TO_SET } from "../../../infra/ssh-ranges.ts";
import type { StackPlan } from "../../../stacks/plan-types.ts";
import { engineImagePinned, type StackConfig } from "../../../stacks/schema.ts";
import { checkHfToken, type TokenState, tokenStateOf } from "../../hf-token.ts";

export interface Finding {
  check: "config" | "credentials" | "pulumi" | "cost" | "backend" | "budget" | "hfToken";
  message: string;
  hint?: string;
}

export interface PreflightReport {
  problems: Finding[];
  warnings: Finding[];
  /** Human lines: cost estimate and where the money goes. */
  costLines: string[];
  /** The GCP project the run will use (config, else the environment), for the manifest and audit. */
  project?: string;
}

export interface ArmInput {
  stack: string;
  config: StackConfig;
  plan: StackPlan;
}

const OPEN_WORLD = new Set(["0.0.0.0/0"]);

/** Both arms must fit one VM: same gcp block and same host shape (only the arm may differ). */
export function checkConfig(arms: ArmInput[]): { problems: Finding[]; warnings: Finding[] } {
  const problems: Finding[] = [];
  const warnings: Finding[] = [];
  if (arms.length === 0) problems.push({ check: "config", message: "no stack given" });
  for (const a of arms) {
    if (a.config.target !== "gcp-vm") {
      problems.push({
        check: "config",
        message: `stack ${a.stack}: target is ${a.config.target}; this command provisions gcp-vm stacks`,
      });
    }
    if (!a.config.run.allowUnpinnedImages && !a.plan.emulated) {
      for (const e of a.plan.engines) {
        if (!engineImagePinned(e)) {
          problems.push({
            check: "config",
            message: `stack ${a.stack}: engine ${e.name} image ${e.image} is not pinned by digest`,
            hint: `pin it: --set engine.images.${a.config.mode}=repo@sha256:<digest> (or run.allowUnpinnedImages=true)`,
          });
          break;
        }
      }
    }
    for (const p of sshRangeProblems(a.config.gcp.sshSourceRanges)) {
      problems.push({
        check: "config",
        message: `stack ${a.stack}: ${p.message}`,
        hint: WHERE_TO_SET,
      });
    }
    for (const r of a.config.gcp.sshSourceRanges) {
      if (OPEN_WORLD.has(r)) {
        warnings.push({
          check: "config",
          message: `stack ${a.stack}: SSH is open to the whole internet (${r})`,
          hint: "use your own address as x.x.x.x/32",
        });
      }
    }
    for (const w of a.plan.warnings)
      warnings.push({ check: "config", message: `${a.stack}: ${w}` });
  }
  const [first, ...rest] = arms;
  if (first) {
    const modes = new Set(arms.map((a) => a.config.mode));
    if (modes.size !== arms.length) {
      problems.push({
        check: "config",
        message: "two stacks of the same arm: give one baseline and one managed stack",
      });
    }
    for (const a of rest) {
      if (JSON.stringify(a.config.gcp) !== JSON.stringify(first.config.gcp)) {
        problems.push({
          check: "config",
          message: `stacks ${first.stack} and ${a.stack} have different gcp blocks; both arms must share one VM`,
        });
      }
      if (JSON.stringify(a.plan.hosts) !== JSON.stringify(first.plan.hosts)) {
        problems.push({
          check: "config",
          message: `stacks ${first.stack} and ${a.stack} use different GPUs; the A/B pair must run on the same hardware`,
        });
      }
    }
  }
  return { problems, warnings };
}

export interface CredentialEnv {
  env: NodeJS.ProcessEnv;
  exists: (path: string) => boolean;
  home?: string;
}

/** Application Default Credentials as the Google provider finds them (presence only). */
export function checkGcloudCredentials({
  env,
  exists,
  home = homedir(),
}: CredentialEnv): Finding[] {
  if (env.GOOGLE_OAUTH_ACCESS_TOKEN || env.CLOUDSDK_AUTH_ACCESS_TOKEN) return [];
  const explicit = env.GOOGLE_APPLICATION_CREDENTIALS || env.GOOGLE_CREDENTIALS;
  if (explicit) {
    if (explicit.trim().startsWith("{") || exists(explicit)) return [];
    return [
      {
        check: "credentials",
        message: `GOOGLE_APPLICATION_CREDENTIALS points to ${explicit}, which does not exist`,
      },
    ];
  }
  const configDir = env.CLOUDSDK_CONFIG ?? join(home, ".config", "gcloud");
  if (exists(join(configDir, "application_default_credentials.json"))) return [];
  return [
    {
      check: "credentials",
      message: "no Google Cloud credentials found",
      hint: "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key)",
    },
  ];
}

/** The project as the Google provider resolves it: gcp.project, else the environment. */
export function resolveProject(arms: ArmInput[], env: NodeJS.ProcessEnv): string | undefined {
  return (
    arms[0]?.config.gcp.project ??
    (env.GOOGLE_CLOUD_PROJECT ||
      env.GOOGLE_PROJECT ||
      env.CLOUDSDK_CORE_PROJECT ||
      env.GCLOUD_PROJECT ||
      undefined)
  );
}

export function checkProject(arms: ArmInput[], env: NodeJS.ProcessEnv): Finding[] {
  const project = resolveProject(arms, env);
  return project
    ? []
    : [
        {
          check: "config",
          message: "no GCP project",
          hint: "--set gcp.project=<id> or export GOOGLE_CLOUD_PROJECT=<id>",
        },
      ];
}

export function checkPulumiCli(which: (cmd: string) => string | undefined): Finding[] {
  return which("pulumi")
    ? []
    : [
        {
          check: "pulumi",
          message: "the Pulumi CLI is not on PATH",
          hint: "install it (https://www.pulumi.com/docs/install/) — `curl -fsSL https://get.pulumi.com | sh`",
        },
      ];
}

/** A local (file://) backend encrypts secrets with a passphrase that must be set non-interactively. */
export function checkBackend(env: NodeJS.ProcessEnv): Finding[] {
  const local = (env.PULUMI_BACKEND_URL ?? "").startsWith("file://");
  if (local && env.PULUMI_CONFIG_PASSPHRASE === undefined && !env.PULUMI_CONFIG_PASSPHRASE_FILE) {
    return [
      {
        check: "backend",
        message: "local Pulumi backend without PULUMI_CONFIG_PASSPHRASE",
        hint: "export PULUMI_CONFIG_PASSPHRASE=... (it encrypts the generated SSH keys and the HF token)",
      },
    ];
  }
  return [];
}

/** run.budgetUsd against the worst case: the dead-man switch bounds what the VM can cost. */
export function checkBudget(arms: ArmInput[]): Finding[] {
  const budgets = arms.flatMap((a) =>
    a.config.run.budgetUsd === undefined ? [] : [{ stack: a.stack, usd: a.config.run.budgetUsd }],
  );
  if (!budgets.length) return [];
  const tightest = budgets.reduce((x, y) => (y.usd < x.usd ? y : x));
  const first = arms[0]!;
  const cost = first.plan.cost;
  const g = first.config.gcp;
  if (!cost)
    return [
      {
        check: "budget",
        message: `stack ${tightest.stack}: run.budgetUsd is set but ${g.machineType} has no price in the table, so the budget cannot be checked`,
        hint: "use a machine type from stacks/catalog.ts or remove run.budgetUsd",
      },
    ];
  if (cost.maxRunCost <= tightest.usd) return [];
  const hours = Math.floor((tightest.usd / cost.hourly) * 10) / 10;
  return [
    {
      check: "budget",
      message: `stack ${tightest.stack}: run.budgetUsd = $${tightest.usd.toFixed(2)} is below this run's worst case of ~$${cost.maxRunCost.toFixed(2)} (~$${cost.hourly.toFixed(2)}/h × gcp.maxRunHours ${g.maxRunHours} h, when the VM deletes itself)`,
      hint:
        hours >= 0.5
          ? `set gcp.maxRunHours ≤ ${hours} (the VM then deletes itself within budget), or raise run.budgetUsd`
          : `the budget buys under 30 minutes of ${g.machineType}; raise run.budgetUsd or pick a cheaper machine`,
    },
  ];
}

export function costLines(arms: ArmInput[]): { lines: string[]; warnings: Finding[] } {
  const first = arms[0];
  const cost = first?.plan.cost;
  if (!first || !cost) {
    return {
      lines: ["cost: no estimate for this machine type (not in the price table)"],
      warnings: [{ check: "cost", message: "no cost estimate for this machine type" }],
    };
  }
  const g = first.config.gcp;
  return {
    lines: [
      `cost (estimate): ~$${cost.hourly.toFixed(2)}/h for ${g.machineType} ${g.provisioningModel} — ${cost.basis}`,
      `  dead-man switch: the VM deletes itself after ${g.maxRunHours} h (at most ~$${cost.maxRunCost.toFixed(2)})`,
      `  ${arms.length === 2 ? "both arms on one VM" : "one arm"}; source: ${cost.source}`,
    ],
    warnings: [],
  };
}

export function preflightReport(
  arms: ArmInput[],
  envs: CredentialEnv & { which: (cmd: string) => string | undefined; hfToken?: TokenState },
): PreflightReport {
  const cfg = checkConfig(arms);
  const cost = costLines(arms);
  const problems = [
    ...cfg.problems,
    ...checkProject(arms, envs.env),
    ...checkHfToken(arms, envs.hfToken ?? tokenStateOf(arms)),
    ...checkBudget(arms),
    ...checkGcloudCredentials(envs),
    ...checkPulumiCli(envs.which),
    ...checkBackend(envs.env),
  ];
  const project = resolveProject(arms, envs.env);
  return {
    problems,
    warnings: [...cfg.warnings, ...cost.warnings],
    costLines: cost.lines,
    ...(project ? { project } : {}),
  };
}

export { checkHfToken, type TokenState, tokenStateOf };
