/**
 * `inferbench profile` options: GenAI-Perf's flags (same names and defaults), validated with zod,
 * mapped onto RunLoadPointOptions. Pure: no I/O, so every rule is unit-tested.
 */
import { basename } from "node:path";
import { z } from "zod";
import { UserError } from "../lib/errors.ts";
import type { GoodputKey, GoodputTargets } from "../results/genai-perf/metrics.ts";
import { GOODPUT_KEYS } from "../results/genai-perf/metrics.ts";
import type { DatasetPlan, LoadPoint, WorkloadPlan } from "../stacks/plan-types.ts";
import type { RunLoadPointOptions } from "./run-point.ts";

export const ENDPOINT_TYPES = ["chat", "completions"] as const;
export const WORKLOADS = [
  "synthetic",
  "input-file",
  "sharegpt",
  "multi-round-qa",
  "shared-prefix",
  "azure-trace",
  "mooncake",
  "servegen",
] as const;
export const DISTRIBUTIONS = ["constant", "poisson", "gamma"] as const;

/** GenAI-Perf `--extra-inputs k:v`: true/false → bool, digits → int, one dot → float, else string. */
export function parseExtraInput(kv: string): Record<string, unknown> {
  const t = kv.trim();
  if (t.startsWith("{")) {
    try {
      const o = JSON.parse(t) as unknown;
      if (!o || typeof o !== "object" || Array.isArray(o)) throw new Error("not an object");
      return o as Record<string, unknown>;
    } catch (err) {
      throw new UserError(`--extra-inputs: bad JSON object ${t} (${(err as Error).message})`);
    }
  }
  const i = t.indexOf(":");
  if (i <= 0)
    throw new UserError(`--extra-inputs: expected key:value or a JSON object, got "${kv}"`);
  const key = t.slice(0, i);
  const v = t.slice(i + 1);
  let value: unknown = v;
  if (v.toLowerCase() === "true") value = true;
  else if (v.toLowerCase() === "false") value = false;
  else if (/^-?\d+$/.test(v)) value = Number.parseInt(v, 10);
  else if (
    /^-?\d*\.\d*$/.test(v) &&
    v.replace("-", "").length > 1 &&
    (v.match(/\./g) ?? []).length === 1
  )
    value = Number.parseFloat(v);
  return { [key]: value };
}

export function parseHeader(kv: string): [string, string] {
  const i = kv.indexOf(":");
  if (i <= 0) throw new UserError(`-H/--header: expected "Name:Value", got "${kv}"`);
  return [kv.slice(0, i).trim(), kv.slice(i + 1).trim()];
}

export function parseGoodput(items: readonly string[]): GoodputTargets {
  const out: GoodputTargets = {};
  for (const item of items.flatMap((s) => s.split(/\s+/)).filter(Boolean)) {
    const [k, v] = item.split(":") as [string, string | undefined];
    if (!(GOODPUT_KEYS as readonly string[]).includes(k))
      throw new UserError(`--goodput: unknown metric "${k}"`, {
        hint: `valid metrics: ${GOODPUT_KEYS.join(", ")}`,
      });
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0)
      throw new UserError(`--goodput: "${item}" needs a non-negative number after the colon`);
    out[k as GoodputKey] = n;
  }
  return out;
}

/** `-- <perf_analyzer args>`: maps --request-distribution, lists the rest as ignored. */
export function parsePerfAnalyzerArgs(args: readonly string[]): {
  requestDistribution?: "constant" | "poisson";
  ignored: string[];
} {
  const out: { requestDistribution?: "constant" | "poisson"; ignored: string[] } = { ignored: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    let value: string | undefined;
    if (a === "--request-distribution") value = args[++i];
    else if (a.startsWith("--request-distribution=")) value = a.slice(a.indexOf("=") + 1);
    else {
      out.ignored.push(a);
      continue;
    }
    if (value !== "constant" && value !== "poisson")
      throw new UserError(
        `perf_analyzer --request-distribution: "${value ?? ""}" is not one of constant, poisson`,
      );
    out.requestDistribution = value;
  }
  return out;
}

export type SweepSpec =
  | { kind: "concurrency"; values: number[] }
  | { kind: "request-rate"; values: number[] }
  | { kind: "auto"; points: number };

export function parseSweep(spec: string): SweepSpec {
  const [kind, list] = spec.split(":", 2) as [string, string | undefined];
  if (kind === "auto") {
    const points = list === undefined || list === "" ? 6 : Number(list);
    if (!Number.isInteger(points) || points < 2 || points > 50)
      throw new UserError(`--sweep auto:<points>: points must be an integer 2..50 (got "${list}")`);
    return { kind: "auto", points };
  }
  if (kind !== "concurrency" && kind !== "request-rate")
    throw new UserError(`--sweep: unknown kind "${kind}"`, {
      hint: "valid: concurrency:1,2,4 | request-rate:1,5,10 | auto[:points]",
    });
  const values = (list ?? "").split(",").map((x) => Number(x.trim()));
  if (values.length === 0 || values.some((v) => !Number.isFinite(v) || v <= 0))
    throw new UserError(`--sweep ${kind}: expected a comma-separated list of positive numbers`);
  if (kind === "concurrency" && values.some((v) => !Number.isInteger(v)))
    throw new UserError("--sweep concurrency: values must be integers");
  return { kind, values };
}

const posInt = z.coerce.number().int().positive();
const nonNegInt = z.coerce.number().int().nonnegative();
const posNum = z.coerce.number().positive();

/** commander's parsed option object (camelCase keys). */
export const profileSchema = z
  .object({
    model: z.array(z.string().min(1)).min(1),
    modelSelectionStrategy: z.enum(["round_robin", "random"]).default("round_robin"),
    endpointType: z.string().default("chat"),
    endpoint: z.string().optional(),
    streaming: z.boolean().default(false),
    url: z.string().default("localhost:8000"),
    header: z.array(z.string()).default([]),
    concurrency: posInt.optional(),
    requestRate: posNum.optional(),
    requestDistribution: z.enum(DISTRIBUTIONS).optional(),
    burstiness: posNum.optional(),
    maxConcurrency: posInt.optional(),
    syntheticInputTokensMean: nonNegInt.default(550),
    syntheticInputTokensStddev: z.coerce.number().nonnegative().default(0),
    outputTokensMean: posInt.optional(),
    outputTokensStddev: z.coerce.number().nonnegative().default(0),
    outputTokensMeanDeterministic: z.boolean().default(false),
    numDatasetEntries: posInt.optional(),
    numPrompts: posInt.optional(),
    randomSeed: nonNegInt.default(0),
    requestCount: posInt.optional(),
    measurementInterval: posNum.optional(),
    warmupRequestCount: nonNegInt.default(0),
    artifactDir: z.string().default("artifacts"),
    profileExportFile: z.string().default("profile_export.json"),
    tokenizer: z.string().optional(),
    extraInputs: z.array(z.string()).default([]),
    inputFile: z.string().optional(),
    goodput: z.array(z.string()).default([]),
    generatePlots: z.boolean().default(false),
    workload: z.enum(WORKLOADS).optional(),
    sharegptMaxConversations: posInt.default(1000),
    users: posInt.default(10),
    rounds: posInt.default(5),
    systemPromptTokens: nonNegInt.default(1000),
    questionTokens: posInt.default(100),
    answerTokens: posInt.default(100),
    groups: posInt.default(8),
    promptsPerGroup: posInt.default(16),
    timeScale: posNum.default(1),
    fixedSchedule: z.boolean().default(false),
    maxRequests: posInt.optional(),
    servegenDataset: z.string().optional(),
    ignoreEos: z.boolean().default(false),
    minTokens: nonNegInt.optional(),
    maxErrorRate: z.coerce.number().min(0).max(1).optional(),
    sessionHeader: z.string().default("x-session-id"),
    sweep: z.string().optional(),
    serverUsage: z.boolean().default(true),
    requestTimeout: posNum.default(600),
    emulated: z.boolean().default(false),
    progress: z.boolean().default(true),
    json: z.boolean().default(false),
    // Old GenAI-Perf flags: accepted, ignored.
    serviceKind: z.string().optional(),
    backend: z.string().optional(),
    outputFormat: z.string().optional(),
    stabilityPercentage: z.coerce.number().optional(),
    tokenizerRevision: z.string().optional(),
    tokenizerTrustRemoteCode: z.boolean().optional(),
    serverMetricsUrl: z.array(z.string()).optional(),
    verbose: z.boolean().optional(),
    batchSize: z.coerce.number().optional(),
  })
  .loose();

export type ProfileFlags = z.output<typeof profileSchema>;

export interface ProfilePlan {
  base: Omit<RunLoadPointOptions, "loadPoint">;
  /** One point, an explicit sweep, or the automatic saturation sweep. */
  points: LoadPoint[] | { auto: number; distribution: "constant" | "poisson" | "gamma" };
  notes: string[];
}

function flagError(flag: string, problem: string, hint?: string): UserError {
  return new UserError(`${flag}: ${problem}`, hint ? { hint } : {});
}

/** Validates flag combinations and maps them onto runner options. */
export function planProfile(
  flags: ProfileFlags,
  perfAnalyzerArgs: readonly string[] = [],
): ProfilePlan {
  const notes: string[] = [];
  if (!(ENDPOINT_TYPES as readonly string[]).includes(flags.endpointType))
    throw flagError(
      "--endpoint-type",
      `"${flags.endpointType}" is not supported by inferbench`,
      `valid choices: ${ENDPOINT_TYPES.join(", ")}`,
    );
  const endpointType = flags.endpointType as "chat" | "completions";
  if (flags.concurrency !== undefined && flags.requestRate !== undefined)
    throw flagError(
      "--concurrency",
      "cannot be combined with --request-rate",
      "choose one: --concurrency N (closed loop) or --request-rate R [--max-concurrency N] (open loop)",
    );
  if (flags.sweep && (flags.concurrency !== undefined || flags.requestRate !== undefined))
    throw flagError("--sweep", "cannot be combined with --concurrency or --request-rate");
  if (
    flags.maxConcurrency !== undefined &&
    flags.requestRate === undefined &&
    !flags.sweep?.startsWith("request-rate")
  )
    throw flagError("--max-concurrency", "only applies to --request-rate (open loop)");
  const pa = parsePerfAnalyzerArgs(perfAnalyzerArgs);
  if (pa.ignored.length > 0) notes.push(`perf_analyzer args ignored: ${pa.ignored.join(" ")}`);
  for (const old of [
    "serviceKind",
    "backend",
    "outputFormat",
    "stabilityPercentage",
    "tokenizerRevision",
    "tokenizerTrustRemoteCode",
    "serverMetricsUrl",
    "batchSize",
  ] as const) {
    if (flags[old] !== undefined)
      notes.push(`--${old.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} accepted and ignored`);
  }
  if (
    flags.requestDistribution &&
    pa.requestDistribution &&
    flags.requestDistribution !== pa.requestDistribution
  )
    throw flagError(
      "--request-distribution",
      `conflicts with perf_analyzer --request-distribution ${pa.requestDistribution}`,
    );
  const distribution = flags.requestDistribution ?? pa.requestDistribution ?? "constant";
  if (flags.burstiness !== undefined && distribution !== "gamma")
    throw flagError("--burstiness", "only applies with --request-distribution gamma");
  if (
    flags.numDatasetEntries !== undefined &&
    flags.numPrompts !== undefined &&
    flags.numDatasetEntries !== flags.numPrompts
  )
    throw flagError(
      "--num-dataset-entries",
      "conflicts with --num-prompts (the old name of the same flag)",
    );
  const numEntries = flags.numDatasetEntries ?? flags.numPrompts ?? 100;
  const pfName = basename(flags.profileExportFile);
  if (pfName !== flags.profileExportFile)
    notes.push(`--profile-export-file: using the bare name ${pfName}`);
  if (!pfName.endsWith(".json"))
    throw flagError("--profile-export-file", `"${pfName}" must end in .json`);

  const workloadKind =
    flags.workload ??
    (flags.inputFile
      ? /\.csv$/i.test(flags.inputFile)
        ? "azure-trace"
        : "input-file"
      : "synthetic");
  const needsFile = ["input-file", "sharegpt", "azure-trace", "mooncake", "servegen"];
  if (needsFile.includes(workloadKind) && !flags.inputFile)
    throw flagError("--workload", `${workloadKind} needs --input-file <path>`);
  const path = flags.inputFile ?? "";
  const dataset: DatasetPlan = (() => {
    switch (workloadKind) {
      case "synthetic":
        return {
          kind: "synthetic",
          inputTokensMean: flags.syntheticInputTokensMean,
          inputTokensStddev: flags.syntheticInputTokensStddev,
          numDatasetEntries: numEntries,
        };
      case "input-file":
        return { kind: "input-file", path };
      case "sharegpt":
        return {
          kind: "sharegpt",
          path,
          maxConversations: flags.sharegptMaxConversations,
          numPrompts: numEntries,
        };
      case "multi-round-qa":
        return {
          kind: "multi-round-qa",
          users: flags.users,
          rounds: flags.rounds,
          systemPromptTokens: flags.systemPromptTokens,
          questionTokens: flags.questionTokens,
          answerTokens: flags.answerTokens,
        };
      case "shared-prefix":
        return {
          kind: "shared-prefix",
          groups: flags.groups,
          promptsPerGroup: flags.promptsPerGroup,
          systemPromptTokens: flags.systemPromptTokens,
          questionTokens: flags.questionTokens,
        };
      case "azure-trace":
        return {
          kind: "azure-trace",
          path,
          timeScale: flags.timeScale,
          maxRequests: flags.maxRequests,
        };
      case "mooncake":
        return {
          kind: "mooncake",
          path,
          timeScale: flags.timeScale,
          maxRequests: flags.maxRequests,
        };
      default:
        return {
          kind: "servegen",
          path,
          datasetPath: flags.servegenDataset,
          timeScale: flags.timeScale,
          maxRequests: flags.maxRequests,
        };
    }
  })();
  if (flags.inputFile && workloadKind === "input-file" && flags.maxRequests !== undefined)
    notes.push("--max-requests applies to trace workloads only");
  const extraInputs: Record<string, unknown> = {};
  for (const e of flags.extraInputs) Object.assign(extraInputs, parseExtraInput(e));
  const headers: Record<string, string> = {};
  for (const h of flags.header) {
    const [k, v] = parseHeader(h);
    headers[k] = v;
  }
  const goodput = flags.goodput.length > 0 ? parseGoodput(flags.goodput) : undefined;
  const ignoreEos = flags.ignoreEos || flags.outputTokensMeanDeterministic;
  const workload: WorkloadPlan = {
    dataset,
    endpointType,
    streaming: flags.streaming,
    requestCount: flags.requestCount,
    outputTokensMean: flags.outputTokensMean,
    outputTokensStddev: flags.outputTokensStddev,
    ignoreEos,
    minTokens: flags.minTokens,
    models: flags.model,
  };
  const base: ProfilePlan["base"] = {
    url: flags.url,
    models: flags.model,
    workload,
    seed: flags.randomSeed,
    warmupRequests: flags.warmupRequestCount,
    artifactDir: flags.artifactDir,
    headers,
    endpoint: flags.endpoint,
    modelSelectionStrategy: flags.modelSelectionStrategy,
    maxErrorRate: flags.maxErrorRate,
    sessionHeader: flags.sessionHeader,
    extraInputs,
    serverUsage: flags.serverUsage,
    tokenizer: flags.tokenizer,
    profileExportFile: pfName,
    requestTimeoutMs: flags.requestTimeout * 1000,
    goodput,
    progress: flags.progress && Boolean(process.stderr.isTTY),
    emulated: flags.emulated,
    durationMs: flags.measurementInterval,
    generatePlots: flags.generatePlots,
    inputConfig: {
      syntheticInputTokensMean: flags.syntheticInputTokensMean,
      syntheticInputTokensStddev: flags.syntheticInputTokensStddev,
      numDatasetEntries: numEntries,
      generatePlots: flags.generatePlots,
      measurementInterval: flags.measurementInterval,
    },
  };
  const rateLp = (r: number): LoadPoint => ({
    kind: "request-rate",
    requestRate: r,
    distribution,
    burstiness: distribution === "gamma" ? (flags.burstiness ?? 1) : undefined,
    maxConcurrency: flags.maxConcurrency,
  });
  const traceKind = ["azure-trace", "mooncake", "servegen"].includes(workloadKind);
  const replay =
    flags.fixedSchedule ||
    (traceKind &&
      flags.concurrency === undefined &&
      flags.requestRate === undefined &&
      !flags.sweep);
  if (flags.fixedSchedule && (flags.concurrency !== undefined || flags.sweep))
    throw flagError("--fixed-schedule", "replays recorded timestamps; drop --concurrency/--sweep");
  base.fixedSchedule = replay;
  let points: ProfilePlan["points"];
  if (replay) points = [rateLp(flags.requestRate ?? 1)];
  else if (flags.sweep) {
    const sw = parseSweep(flags.sweep);
    if (sw.kind === "auto")
      points = {
        auto: sw.points,
        distribution: flags.requestDistribution ?? pa.requestDistribution ?? "poisson",
      };
    else if (sw.kind === "concurrency")
      points = sw.values.map((c) => ({ kind: "concurrency", concurrency: c }));
    else points = sw.values.map(rateLp);
  } else if (flags.requestRate !== undefined) points = [rateLp(flags.requestRate)];
  else points = [{ kind: "concurrency", concurrency: flags.concurrency ?? 1 }];
  return { base, points, notes };
}
