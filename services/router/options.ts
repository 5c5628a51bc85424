/**
 * The router's serve flags: the commander options, their validation and the RouterConfig they
 * build. Shared by `inferbench serve router` (cli/commands/serve-router.ts) and the container
 * entry point (main.ts), so the service owns its command line and never imports the CLI.
 */

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { z } from "zod";
import { errorMessage, InputFileError, UserError } from "../../lib/errors.ts";
import { parseFlags } from "../../lib/flags.ts";
import { createLogger } from "../../lib/logger.ts";
import { registerSecret } from "../../lib/redact.ts";
import type { RouterPlan, StackPlan } from "../../stacks/plan-types.ts";
import {
  DEFAULT_POLICY_OPTIONS,
  DEFAULTS,
  parseBackendsFlag,
  ROUTER_POLICIES,
  type RouterConfig,
  routerConfigFromPlan,
} from "./config.ts";
import { startRouter } from "./server.ts";

const int = (min: number, max: number) =>
  z.coerce.number().int(`must be an integer`).min(min).max(max);

export const routerOptionsSchema = z
  .object({
    policy: z.enum(ROUTER_POLICIES as [string, ...string[]]).optional(),
    backends: z.string().min(1).optional(),
    plan: z.string().min(1).optional(),
    port: int(0, 65535).optional(),
    host: z.string().min(1).default(DEFAULTS.host),
    pollIntervalMs: int(50, 60_000).optional(),
    requestTimeoutMs: int(100, 3_600_000).optional(),
    apiKey: z.string().min(1, "must not be empty").optional(),
    apiKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name")
      .optional(),
    maxBodyBytes: int(1024, 1024 * 1024 * 1024).optional(),
    bodyTimeoutMs: int(100, 3_600_000).optional(),
  })
  .refine((o) => (o.backends === undefined) !== (o.plan === undefined), {
    message: "give exactly one of --backends or --plan",
    path: ["backends"],
  });

function readPlanFile(file: string): RouterPlan {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new InputFileError(
      file,
      undefined,
      `cannot read plan JSON: ${errorMessage(err)}`,
      "write one with `inferbench plan --stack <name> --json > plan.json`",
    );
  }
  const rp = (json as Partial<StackPlan>)?.router ?? json;
  if (!rp || typeof rp !== "object" || !("backends" in rp) || !("policy" in rp))
    throw new InputFileError(
      file,
      undefined,
      "no router section (expected a StackPlan or a RouterPlan)",
    );
  return rp as RouterPlan;
}

export const API_KEY_ENV = "INFERBENCH_ROUTER_API_KEY";

/** --api-key, else the variable --api-key-env names, else INFERBENCH_ROUTER_API_KEY; never echoed. */
function apiKey(o: { apiKey?: string; apiKeyEnv?: string }, env: NodeJS.ProcessEnv) {
  if (o.apiKey !== undefined) return o.apiKey;
  if (o.apiKeyEnv) {
    const key = env[o.apiKeyEnv];
    if (!key)
      throw new UserError(`--api-key-env: environment variable ${o.apiKeyEnv} is empty or unset`);
    return key;
  }
  const key = env[API_KEY_ENV];
  return key === undefined || key === "" ? undefined : key;
}

/** RouterConfig from the parsed flags (commander's option object) and the environment. */
export function buildRouterConfig(raw: unknown, env: NodeJS.ProcessEnv): RouterConfig {
  const o = parseFlags(routerOptionsSchema, raw);
  let config: RouterConfig;
  if (o.plan) {
    const rp = readPlanFile(o.plan);
    config = routerConfigFromPlan(rp, { host: o.host });
  } else {
    if (!o.policy) throw new UserError("--policy is required with --backends");
    config = {
      policy: o.policy as RouterConfig["policy"],
      port: o.port ?? 8000,
      host: o.host,
      pollIntervalMs: DEFAULTS.pollIntervalMs,
      requestTimeoutMs: DEFAULTS.requestTimeoutMs,
      options: DEFAULT_POLICY_OPTIONS,
      backends: parseBackendsFlag(o.backends!),
    };
  }
  if (o.policy) config.policy = o.policy as RouterConfig["policy"];
  if (o.port !== undefined) config.port = o.port;
  if (o.pollIntervalMs !== undefined) config.pollIntervalMs = o.pollIntervalMs;
  if (o.requestTimeoutMs !== undefined) config.requestTimeoutMs = o.requestTimeoutMs;
  if (o.maxBodyBytes !== undefined) config.maxBodyBytes = o.maxBodyBytes;
  if (o.bodyTimeoutMs !== undefined) config.bodyTimeoutMs = o.bodyTimeoutMs;
  const key = apiKey(o, env);
  if (key !== undefined) {
    registerSecret(key); // redacted should anything ever print it
    config.apiKey = key;
  }
  return config;
}

/** Runs the router until SIGINT/SIGTERM. */
async function serveUntilSignal(config: RouterConfig): Promise<void> {
  const log = createLogger("router");
  let router: Awaited<ReturnType<typeof startRouter>>;
  try {
    router = await startRouter({ ...config, logger: log });
  } catch (err) {
    throw new UserError(`cannot listen on ${config.host}:${config.port}: ${errorMessage(err)}`, {
      exitCode: 1,
    });
  }
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info(`${sig}: shutting down`);
      void router.close().then(resolve);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}

/**
 * Gives `cmd` the router's description, flags, help and action. `usage` is how the examples
 * invoke it (`inferbench serve router`, or the container's entry point).
 */
export function configureRouterCommand(cmd: Command, usage = "inferbench serve router"): Command {
  return cmd
    .description(
      "Run the streaming OpenAI-compatible router: routes each request by its `model` to that " +
        "model's replicas with a load-balancing policy, streams responses through unchanged, adds " +
        "`x-inferbench-backend`, and serves /health, /v1/models and Prometheus /metrics.",
    )
    .option(
      "--policy <policy>",
      `round-robin (baseline, no load signal) | least-busy | power-of-two | prefix-aware | session | kv-aware (required with --backends; overrides the plan's)`,
    )
    .option(
      "--backends <list>",
      "model=url replicas, comma-separated; repeat a model for more replicas, e.g. llama=http://10.0.0.2:8001,llama=http://10.0.0.3:8001",
    )
    .option(
      "--plan <plan.json>",
      "read backends, policy, options and timeouts from a plan's router section",
    )
    .option("--port <n>", "listen port (default: the plan's, or 8000)")
    .option(
      "--host <addr>",
      "listen address; 0.0.0.0 (or ::) to accept other machines — then set an API key",
      DEFAULTS.host,
    )
    .option(
      "--poll-interval-ms <ms>",
      `replica /metrics poll interval, 50..60000 (default ${DEFAULTS.pollIntervalMs})`,
    )
    .option(
      "--request-timeout-ms <ms>",
      `time allowed for a replica's response headers (default ${DEFAULTS.requestTimeoutMs})`,
    )
    .option(
      "--api-key <key>",
      `require \`Authorization: Bearer <key>\` on /v1/* (401 otherwise; /health and /metrics stay open). Visible in process lists: prefer ${API_KEY_ENV}=<key> in the environment, which is read when neither key flag is given`,
    )
    .option(
      "--api-key-env <VAR>",
      "read the API key from this environment variable instead (never logged)",
    )
    .option(
      "--max-body-bytes <n>",
      `request body limit, 413 above it (default ${DEFAULTS.maxBodyBytes}, 32 MiB)`,
    )
    .option(
      "--body-timeout-ms <ms>",
      `time from the request head to the end of its body, 408 after it (default ${DEFAULTS.bodyTimeoutMs})`,
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        `  ${usage} --policy least-busy --backends m=http://127.0.0.1:8001,m=http://127.0.0.1:8002 --port 8000\n` +
        `  ${usage} --plan plan.json --poll-interval-ms 50\n` +
        `  ${API_KEY_ENV}=... ${usage} --plan plan.json --host 0.0.0.0\n`,
    )
    .action((raw: unknown) => serveUntilSignal(buildRouterConfig(raw, process.env)));
}
