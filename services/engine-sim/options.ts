/**
 * engine-sim's serve flags: the commander options, their validation, the engines they describe
 * and the foreground action. Shared by `inferbench serve engine-sim`
 * (cli/commands/serve-engine-sim.ts) and the container entry point (main.ts), so the service owns
 * its command line and never imports the CLI.
 */

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { z } from "zod";
import { errorMessage, InputFileError, UserError } from "../../lib/errors.ts";
import { parseFlags } from "../../lib/flags.ts";
import { createLogger } from "../../lib/logger.ts";
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT_SEC } from "./body.ts";
import { type EngineSpec, startEngineHost } from "./host.ts";
import { getProfile, profileNames } from "./profiles.ts";
import type { FaultConfig } from "./server.ts";

const int = (min: number, max: number) =>
  z.coerce.number().int("must be an integer").min(min).max(max);

const faultSchema = z.strictObject({
  errorRates: z
    .partialRecord(z.enum(["400", "429", "500", "503"]), z.number().min(0).max(1))
    .optional(),
  stallProbability: z.number().min(0).max(1).optional(),
  stallSec: z.number().positive().optional(),
  crashAfterRequests: z.number().int().min(1).optional(),
});

export const engineSimOptionsSchema = z
  .object({
    profile: z.string().min(1).optional(),
    port: int(0, 65535).optional(),
    model: z.string().min(1).optional(),
    kvcached: z.boolean().default(false),
    gpu: int(0, 63).default(0),
    startupDelay: z.coerce.number().min(0).max(3600).optional(),
    seed: int(0, 2 ** 31 - 1).default(0),
    metricsV0: z.boolean().default(false),
    plan: z.string().min(1).optional(),
    planHost: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    prefixCaching: z.boolean().default(true),
    enablePrefixCaching: z.boolean().default(true),
    servedModelName: z.string().min(1).optional(),
    maxCachedTokens: int(0, 10_000_000).optional(),
    maxModelLen: int(16, 10_000_000).optional(),
    maxNumSeqs: int(1, 100_000).optional(),
    maxNumBatchedTokens: int(1, 10_000_000).optional(),
    gpuMemoryUtilization: z.coerce.number().gt(0).max(1).optional(),
    maxWaiting: int(1, 10_000_000).optional(),
    maxBodyBytes: int(1024, 1024 * 1024 * 1024).default(DEFAULT_MAX_BODY_BYTES),
    requestTimeout: z.coerce.number().min(0.1).max(3600).default(DEFAULT_REQUEST_TIMEOUT_SEC),
    faults: z.string().min(1).optional(),
  })
  .refine((o) => (o.profile === undefined) !== (o.plan === undefined), {
    message: "give exactly one of --profile (one engine) or --plan (every engine of a plan host)",
    path: ["profile"],
  });

export type EngineSimOptions = z.output<typeof engineSimOptionsSchema>;

const planSchema = z.looseObject({
  engines: z
    .array(
      z.looseObject({
        name: z.string().min(1),
        host: z.string(),
        model: z.string().min(1),
        hfPath: z.string().optional(),
        gpus: z.array(z.number().int().min(0)),
        port: z.number().int().min(0).max(65535),
        kvcached: z.boolean(),
        prefixCaching: z.boolean(),
        maxModelLen: z.number().int().positive(),
        maxNumSeqs: z.number().int().positive(),
        maxNumBatchedTokens: z.number().int().positive(),
        gpuMemoryUtilization: z.number().optional(),
        emulator: z.looseObject({
          profile: z.string().min(1),
          startupDelaySec: z.number().min(0),
          maxCachedTokens: z.number().int().min(0).optional(),
        }),
      }),
    )
    .min(1),
});

/** Engines of one plan host; `--host` doubles as the selector when it names a plan host. */
export function enginesFromPlan(
  file: string,
  text: string,
  hostName: string | undefined,
): EngineSpec[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputFileError(file, undefined, `not valid JSON: ${errorMessage(e)}`);
  }
  const parsed = planSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new InputFileError(
      file,
      undefined,
      `${i.path.join(".")}: ${i.message}`,
      "pass a StackPlan written by `inferbench plan --json`",
    );
  }
  const engines = parsed.data.engines as EngineSpec[];
  const hosts = [...new Set(engines.map((e) => e.host!))];
  let host = hostName;
  if (host === undefined) {
    if (hosts.length > 1)
      throw new UserError(
        `the plan has several hosts (${hosts.join(", ")}); choose one with --plan-host`,
      );
    host = hosts[0];
  }
  const mine = engines.filter((e) => e.host === host);
  if (mine.length === 0)
    throw new UserError(`no engines on host "${host}" in ${file}; hosts: ${hosts.join(", ")}`);
  for (const e of mine) {
    if (!getProfile(e.emulator.profile))
      throw new InputFileError(
        file,
        undefined,
        `engine ${e.name}: unknown engine-sim profile "${e.emulator.profile}"; known: ${profileNames().join(", ")}`,
      );
  }
  return mine;
}

export function parseFaults(raw: string | undefined): FaultConfig | undefined {
  if (raw === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new UserError(`--faults: not valid JSON: ${errorMessage(e)}`);
  }
  const r = faultSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new UserError(`--faults: ${i.path.join(".") || "value"}: ${i.message}`);
  }
  return r.data as FaultConfig;
}

/** The engines of `--plan` (one plan host) and the address to bind. */
function planEngines(o: EngineSimOptions): { engines: EngineSpec[]; bind: string } {
  const file = o.plan!;
  let bind = o.host ?? "127.0.0.1";
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new InputFileError(file, undefined, `cannot read: ${errorMessage(e)}`);
  }
  let planHost = o.planHost;
  if (planHost === undefined && o.host !== undefined && text.includes(`"${o.host}"`)) {
    let hosts = new Set<string | undefined>();
    try {
      hosts = new Set(
        ((JSON.parse(text) as { engines?: { host?: string }[] }).engines ?? []).map((e) => e.host),
      );
    } catch {
      // enginesFromPlan reports the syntax error with the file named.
    }
    if (hosts.has(o.host)) {
      planHost = o.host;
      bind = "127.0.0.1";
    }
  }
  const engines = enginesFromPlan(file, text, planHost);
  if (o.startupDelay !== undefined)
    for (const e of engines) e.emulator = { ...e.emulator, startupDelaySec: o.startupDelay };
  return { engines, bind };
}

/** The single engine of `--profile`. */
function profileEngine(o: EngineSimOptions): EngineSpec {
  const profile = getProfile(o.profile!);
  if (!profile)
    throw new UserError(
      `--profile: unknown profile "${o.profile}"; known: ${profileNames().join(", ")}`,
    );
  if (o.kvcached && o.gpuMemoryUtilization !== undefined)
    throw new UserError(
      "--gpu-memory-utilization does not apply with --kvcached (KVCached maps memory on demand)",
    );
  const emulator: EngineSpec["emulator"] = {
    profile: profile.name,
    startupDelaySec: o.startupDelay ?? 0,
  };
  if (o.maxCachedTokens !== undefined) emulator.maxCachedTokens = o.maxCachedTokens;
  const spec: EngineSpec = {
    name: o.model ?? profile.defaultModel,
    model: o.model ?? profile.defaultModel,
    gpus: [o.gpu],
    port: o.port ?? 8000,
    kvcached: o.kvcached,
    prefixCaching: o.prefixCaching,
    emulator,
  };
  if (o.maxModelLen !== undefined) spec.maxModelLen = o.maxModelLen;
  if (o.maxNumSeqs !== undefined) spec.maxNumSeqs = o.maxNumSeqs;
  if (o.maxNumBatchedTokens !== undefined) spec.maxNumBatchedTokens = o.maxNumBatchedTokens;
  if (o.gpuMemoryUtilization !== undefined) spec.gpuMemoryUtilization = o.gpuMemoryUtilization;
  return spec;
}

/** Parsed flags → the engines to host, where, and how. Throws UserError naming the flag. */
export function resolveEngineSimOptions(raw: unknown): {
  options: EngineSimOptions;
  engines: EngineSpec[];
  bind: string;
  faults: FaultConfig | undefined;
} {
  const o = parseFlags(engineSimOptionsSchema, raw);
  if (o.model === undefined && o.servedModelName !== undefined) o.model = o.servedModelName;
  if (!o.enablePrefixCaching) o.prefixCaching = false;
  const faults = parseFaults(o.faults);
  if (o.plan !== undefined) return { options: o, ...planEngines(o), faults };
  return { options: o, engines: [profileEngine(o)], bind: o.host ?? "127.0.0.1", faults };
}

/** Runs the engines until SIGINT/SIGTERM. */
async function serveUntilSignal(raw: unknown): Promise<void> {
  const { options: o, engines, bind, faults } = resolveEngineSimOptions(raw);
  const log = createLogger("engine-sim");
  let alive = engines.length;
  let host: Awaited<ReturnType<typeof startEngineHost>>;
  try {
    host = await startEngineHost(engines, {
      bindAddress: bind,
      seed: o.seed,
      v0Metrics: o.metricsV0,
      maxWaiting: o.maxWaiting ?? 10_000,
      maxBodyBytes: o.maxBodyBytes,
      requestTimeoutSec: o.requestTimeout,
      ...(faults ? { faults } : {}),
      log,
      onCrash: () => {
        alive--;
        if (alive === 0) {
          log.error("every engine crashed (fault injection): exiting 1");
          process.exit(1);
        }
      },
    });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "EADDRINUSE") throw new UserError(`port already in use: ${errorMessage(e)}`);
    if (e instanceof UserError) throw e;
    throw new UserError(errorMessage(e));
  }
  log.info(
    `EMULATED engines ready to accept connections: ${Object.entries(host.ports)
      .map(([n, p]) => `${n}=${bind}:${p}`)
      .join(", ")}`,
  );
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info(`${sig}: shutting down`);
      host.close().then(resolve, (e: unknown) => {
        // What did not close would keep the process alive: leave now, and say why.
        log.error(`shutdown: ${errorMessage(e)}; exiting 1`);
        process.exit(1);
      });
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}

/**
 * Gives `cmd` engine-sim's description, flags, help and action. `usage` is how the examples
 * invoke it (`inferbench serve engine-sim`, or the container's entry point).
 */
export function configureEngineSimCommand(
  cmd: Command,
  usage = "inferbench serve engine-sim",
): Command {
  return cmd
    .description(
      "Run emulated vLLM engines (EMULATED numbers: a calibrated step-time model, no GPU). One engine with --profile, or every engine of one plan host with --plan (KVCached engines on the same GPU share its page pool).",
    )
    .option("--profile <name>", `engine-sim profile: ${profileNames().join(", ")}`)
    .option("--port <n>", "port for the single engine (0 = any free port)", "8000")
    .option("--model <name>", "served model name (default: the profile's)")
    .option("--kvcached", "KVCached mode: KV pages mapped on demand from the GPU's shared pool")
    .option("--gpu <id>", "virtual GPU id the engine is pinned to", "0")
    .option("--startup-delay <s>", "seconds before /health turns 200 (emulated weight loading)")
    .option("--seed <n>", "seed for output lengths and text", "0")
    .option("--metrics-v0", "expose vLLM V0 metric names (gpu_cache_usage_perc, ...) instead of V1")
    .option("--plan <file>", "StackPlan JSON: host every engine of one plan host in this process")
    .option("--plan-host <name>", "with --plan: which plan host's engines to run")
    .option(
      "--host <addr>",
      "listen address (default 127.0.0.1; containers pass 0.0.0.0). With --plan, a plan host name here selects that host, as --plan-host does",
    )
    .option("--no-prefix-caching", "disable prefix caching (single engine)")
    .option("--no-enable-prefix-caching", "vLLM spelling of --no-prefix-caching")
    .option("--served-model-name <name>", "vLLM spelling of --model")
    .option("--max-cached-tokens <n>", "cap on cached prefix tokens (KVCached; 0 = off)")
    .option("--max-model-len <n>", "max_model_len (default: the profile's)")
    .option("--max-num-seqs <n>", "sequence cap per step (default: the profile's)")
    .option("--max-num-batched-tokens <n>", "token budget per step (default: the profile's)")
    .option("--gpu-memory-utilization <f>", "static KV partition fraction (not with --kvcached)")
    .option("--max-waiting <n>", "answer 503 beyond this many waiting requests", "10000")
    .option(
      "--max-body-bytes <n>",
      `request body limit: 413 as soon as a body passes it, nothing parsed (default ${DEFAULT_MAX_BODY_BYTES})`,
    )
    .option(
      "--request-timeout <s>",
      `seconds a client may take to send its request, headers and body: 408 after (default ${DEFAULT_REQUEST_TIMEOUT_SEC})`,
    )
    .option(
      "--faults <json>",
      'fault injection, off by default, e.g. \'{"errorRates":{"500":0.01},"stallProbability":0.001,"stallSec":2,"crashAfterRequests":500}\'',
    )
    .addHelpText(
      "after",
      `
Endpoints (vllm serve compatible): POST /v1/chat/completions, POST /v1/completions (SSE streaming
or not, max_tokens, ignore_eos, min_tokens, stream_options.include_usage), GET /v1/models,
GET /health (503 until the start-up delay has passed), GET /metrics (vLLM V1 names, labels
model_name and engine; step-timing lag as inferbench_engine_sim_step_lag_seconds).

Examples:
  ${usage} --profile llama-3.1-8b@h100 --port 8001 --model llama-8b
  ${usage} --plan plan.json --plan-host vm-0 --host 0.0.0.0`,
    )
    .action((raw: unknown) => serveUntilSignal(raw));
}
