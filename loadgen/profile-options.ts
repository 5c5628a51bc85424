/**
 * `inferbench profile` options: GenAI-Perf's flags (same names and defaults), validated with zod,
 * mapped onto RunLoadPointOptions. Pure: no I/O (input files are read, and refused, when the
 * workload is built, before any request), so every rule is unit-tested. Counts are bounded as in the stack schema (stacks/schema.ts LIMITS), and a flag
 * that the chosen load or workload would ignore is refused, naming both flags, rather than
 * dropped. genai-perf's parser.py puts --concurrency and --request-rate in one mutually
 * exclusive group and refuses --output-tokens-stddev / --output-tokens-mean-deterministic without
 * --output-tokens-mean; later releases also refuse --measurement-interval with --request-count
 * ("argument --measurement-interval/-p: not allowed with argument --request-count"). The other
 * refusals follow from what each workload and load mode reads.
 */
import { basename } from "node:path";
import { z } from "zod";
import { UserError } from "../lib/errors.ts";
import type { GoodputKey, GoodputTargets } from "../results/genai-perf/metrics.ts";
import { GOODPUT_KEYS } from "../results/genai-perf/metrics.ts";
import type { DatasetPlan, LoadPoint, WorkloadPlan } from "../stacks/plan-types.ts";
import { datasetTokensIssue, LIMITS } from "../stacks/schema.ts";
import { normalizeUrl } from "./client.ts";
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
    let o: unknown;
    try {
      o = JSON.parse(t) as unknown;
      if (!o || typeof o !== "object" || Array.isArray(o)) throw new Error("not an object");
    } catch (err) {
      throw new UserError(
        `--extra-inputs: bad JSON object ${t.slice(0, 80)} (${(err as Error).message})`,
      );
    }
    for (const k of Object.keys(o as object)) refusePrototypeKey(k);
    return o as Record<string, unknown>;
  }
  const i = t.indexOf(":");
  if (i <= 0)
    throw new UserError(
      `--extra-inputs: expected key:value or a JSON object, got "${kv.slice(0, 80)}"`,
    );
  const key = t.slice(0, i);
  refusePrototypeKey(key);
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

function refusePrototypeKey(key: string): void {
  if (["__proto__", "constructor", "prototype"].includes(key))
    throw new UserError(
      `--extra-inputs: "${key}" is not allowed as a body field (it would reach JavaScript object prototypes)`,
    );
}

/** RFC 9110 field-name characters. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function parseHeader(kv: string): [string, string] {
  const i = kv.indexOf(":");
  // The value is never echoed: headers carry credentials (Authorization).
  if (i <= 0)
    throw new UserError(
      '-H/--header: expected "Name:Value" (the argument has no name before a ":")',
    );
  const name = kv.slice(0, i).trim();
  const value = kv.slice(i + 1).trim();
  if (!HEADER_NAME.test(name))
    throw new UserError(
      `-H/--header: "${name.slice(0, 40)}" is not a valid header name (letters, digits and !#$%&'*+.^_\`|~- only)`,
    );
  if (/[\r\n\0]/.test(value))
    throw new UserError(`-H/--header ${name}: the value holds a line break or NUL`);
  return [name, value];
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

/** An integer flag in [min, max]; the message names the bound (the LIMITS of stacks/schema.ts). */
const intFlag = (min: number, max: number, what: string) =>
  z.coerce
    .number()
    .int({ message: "must be an integer" })
    .min(min, { message: `must be ≥ ${min}` })
    .max(max, { message: `must be ≤ ${max.toLocaleString("en-US")} (${what})` });
const numFlag = (min: number, max: number, what: string, exclusiveMin = true) =>
  (exclusiveMin
    ? z.coerce.number().gt(min, { message: `must be > ${min}` })
    : z.coerce.number().min(min, { message: `must be ≥ ${min}` })
  ).max(max, { message: `must be ≤ ${max.toLocaleString("en-US")} (${what})` });
const TOKENS = "LIMITS.tokensPerRequest";
const tokens = (min: number) => intFlag(min, LIMITS.tokensPerRequest, TOKENS);
const entries = intFlag(1, LIMITS.datasetEntries, "LIMITS.datasetEntries");
const conc = intFlag(1, LIMITS.concurrency, "LIMITS.concurrency");

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
    concurrency: conc.optional(),
    requestRate: numFlag(0, LIMITS.requestRate, "LIMITS.requestRate").optional(),
    requestDistribution: z.enum(DISTRIBUTIONS).optional(),
    burstiness: numFlag(
      LIMITS.burstinessMin,
      LIMITS.burstinessMax,
      "LIMITS.burstinessMax",
      false,
    ).optional(),
    maxConcurrency: conc.optional(),
    syntheticInputTokensMean: tokens(0).default(550),
    syntheticInputTokensStddev: numFlag(0, LIMITS.tokensPerRequest, TOKENS, false).default(0),
    outputTokensMean: tokens(1).optional(),
    outputTokensStddev: numFlag(0, LIMITS.tokensPerRequest, TOKENS, false).default(0),
    outputTokensMeanDeterministic: z.boolean().default(false),
    numDatasetEntries: entries.optional(),
    numPrompts: entries.optional(),
    randomSeed: intFlag(0, LIMITS.seed, "seeds are 32-bit").default(0),
    requestCount: intFlag(1, LIMITS.requestCount, "LIMITS.requestCount").optional(),
    measurementInterval: numFlag(0, LIMITS.durationMs, "a day in ms").optional(),
    warmupRequestCount: intFlag(0, LIMITS.warmupRequests, "LIMITS.warmupRequests").default(0),
    artifactDir: z.string().default("artifacts"),
    profileExportFile: z.string().default("profile_export.json"),
    tokenizer: z.string().optional(),
    extraInputs: z.array(z.string()).default([]),
    inputFile: z.string().optional(),
    goodput: z.array(z.string()).default([]),
    generatePlots: z.boolean().default(false),
    workload: z.enum(WORKLOADS).optional(),
    sharegptMaxConversations: entries.default(1000),
    users: intFlag(1, LIMITS.users, "LIMITS.users").default(10),
    rounds: intFlag(1, LIMITS.rounds, "LIMITS.rounds").default(5),
    systemPromptTokens: tokens(0).default(1000),
    questionTokens: tokens(1).default(100),
    answerTokens: tokens(1).default(100),
    groups: intFlag(1, LIMITS.users, "LIMITS.users").default(8),
    promptsPerGroup: intFlag(1, LIMITS.users, "LIMITS.users").default(16),
    timeScale: numFlag(
      LIMITS.timeScaleMin,
      LIMITS.timeScaleMax,
      "LIMITS.timeScaleMax",
      false,
    ).default(1),
    fixedSchedule: z.boolean().default(false),
    maxRequests: entries.optional(),
    servegenDataset: z.string().optional(),
    ignoreEos: z.boolean().default(false),
    minTokens: tokens(0).optional(),
    maxErrorRate: z.coerce.number().min(0).max(1).optional(),
    sessionHeader: z.string().default("x-session-id"),
    sweep: z.string().optional(),
    serverUsage: z.boolean().default(true),
    requestTimeout: numFlag(0, LIMITS.durationMs / 1000, "a day in s").default(600),
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

type WorkloadKind = (typeof WORKLOADS)[number];
const TRACES: readonly WorkloadKind[] = ["azure-trace", "mooncake", "servegen"];

/** Flags that only one family of workloads reads, with their defaults (a default is not "given"). */
const WORKLOAD_FLAGS: readonly {
  key: keyof ProfileFlags;
  fallback: unknown;
  kinds: readonly WorkloadKind[];
}[] = [
  { key: "syntheticInputTokensMean", fallback: 550, kinds: ["synthetic"] },
  { key: "syntheticInputTokensStddev", fallback: 0, kinds: ["synthetic"] },
  { key: "numDatasetEntries", fallback: undefined, kinds: ["synthetic", "sharegpt"] },
  { key: "numPrompts", fallback: undefined, kinds: ["synthetic", "sharegpt"] },
  { key: "sharegptMaxConversations", fallback: 1000, kinds: ["sharegpt"] },
  { key: "users", fallback: 10, kinds: ["multi-round-qa"] },
  { key: "rounds", fallback: 5, kinds: ["multi-round-qa"] },
  { key: "answerTokens", fallback: 100, kinds: ["multi-round-qa"] },
  { key: "systemPromptTokens", fallback: 1000, kinds: ["multi-round-qa", "shared-prefix"] },
  { key: "questionTokens", fallback: 100, kinds: ["multi-round-qa", "shared-prefix"] },
  { key: "groups", fallback: 8, kinds: ["shared-prefix"] },
  { key: "promptsPerGroup", fallback: 16, kinds: ["shared-prefix"] },
  { key: "timeScale", fallback: 1, kinds: TRACES },
  { key: "maxRequests", fallback: undefined, kinds: TRACES },
  { key: "servegenDataset", fallback: undefined, kinds: ["servegen"] },
  {
    key: "inputFile",
    fallback: undefined,
    kinds: ["input-file", "sharegpt", "azure-trace", "mooncake", "servegen"],
  },
];

const flagOf = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * A flag the chosen workload or load mode would not read is refused, naming both flags: a run
 * that silently ignored `--time-scale 0.1` measures something else than was asked for.
 */
function refuseIgnoredFlags(
  flags: ProfileFlags,
  kind: WorkloadKind,
  paDistribution: string | undefined,
): void {
  for (const f of WORKLOAD_FLAGS) {
    const v = flags[f.key];
    if (v === undefined || v === f.fallback || f.kinds.includes(kind)) continue;
    throw flagError(
      flagOf(f.key),
      `only applies to --workload ${f.kinds.join(" | ")}; the workload is ${kind}${flags.workload ? " (--workload)" : " (the default)"}, which would ignore it`,
    );
  }
  if (flags.measurementInterval !== undefined && flags.requestCount !== undefined)
    throw flagError(
      "--measurement-interval",
      "cannot be combined with --request-count (measure for a time or for a count, as genai-perf)",
    );
  if (flags.outputTokensMean === undefined) {
    if (flags.outputTokensStddev !== 0)
      throw flagError(
        "--output-tokens-stddev",
        "needs --output-tokens-mean (without a mean no max_tokens is sent, as genai-perf)",
      );
    if (flags.outputTokensMeanDeterministic)
      throw flagError(
        "--output-tokens-mean-deterministic",
        "needs --output-tokens-mean (as genai-perf)",
      );
    if (flags.ignoreEos && (kind === "synthetic" || kind === "shared-prefix"))
      throw flagError(
        "--ignore-eos",
        `needs --output-tokens-mean for ${kind} prompts: without max_tokens every request would generate until the model's context is full`,
      );
  }
  if (
    flags.minTokens !== undefined &&
    flags.outputTokensMean !== undefined &&
    flags.minTokens > flags.outputTokensMean
  )
    throw flagError(
      "--min-tokens",
      `${flags.minTokens} is above --output-tokens-mean ${flags.outputTokensMean}: vLLM refuses min_tokens > max_tokens, so every request would fail`,
    );
  const sweepRate = flags.sweep?.startsWith("request-rate") || flags.sweep?.startsWith("auto");
  const trace = TRACES.includes(kind);
  const replay = flags.fixedSchedule || (trace && flags.concurrency === undefined);
  if (trace && (flags.requestRate !== undefined || sweepRate))
    throw flagError(
      flags.requestRate !== undefined ? "--request-rate" : "--sweep",
      `${kind} replays its recorded arrival times, so a request rate would be ignored; speed the replay up with --time-scale, or drive it closed loop with --concurrency`,
    );
  if (flags.fixedSchedule && flags.requestRate !== undefined)
    throw flagError(
      "--request-rate",
      "cannot be combined with --fixed-schedule (the schedule is the file's timestamps)",
    );
  const openLoop = flags.requestRate !== undefined || sweepRate || replay;
  if (flags.requestDistribution !== undefined && !openLoop)
    throw flagError(
      "--request-distribution",
      `only applies with --request-rate (or --sweep request-rate:…/auto); the run is closed loop (${flags.concurrency !== undefined ? "--concurrency" : "--concurrency 1, the default"})`,
    );
  if (flags.requestDistribution !== undefined && replay)
    throw flagError(
      "--request-distribution",
      `cannot be combined with ${flags.fixedSchedule ? "--fixed-schedule" : `--workload ${kind}`} (arrivals are the recorded timestamps)`,
    );
  if (paDistribution !== undefined && replay)
    throw flagError(
      "perf_analyzer --request-distribution",
      `cannot be combined with ${flags.fixedSchedule ? "--fixed-schedule" : `--workload ${kind}`} (arrivals are the recorded timestamps)`,
    );
  const streamingOnly = [
    "time_to_first_token",
    "time_to_second_token",
    "inter_token_latency",
    "output_token_throughput_per_user",
  ];
  if (!flags.streaming) {
    const needs = flags.goodput
      .flatMap((g) => g.split(/\s+/))
      .map((g) => g.split(":")[0]!)
      .find((k) => streamingOnly.includes(k));
    if (needs)
      throw flagError(
        "--goodput",
        `${needs} is measured on streamed tokens only; add --streaming (without it the metric does not exist, as in genai-perf)`,
      );
  }
}

/** Body fields that a dedicated flag also sets: the later one would silently win. */
function refuseBodyConflicts(flags: ProfileFlags, extra: Record<string, unknown>): void {
  const pairs: [string, boolean, string][] = [
    ["model", true, "-m/--model"],
    ["messages", true, "the workload"],
    ["prompt", true, "the workload"],
    ["stream", true, "--streaming"],
    ["stream_options", flags.serverUsage && flags.streaming, "--server-usage (on by default)"],
    ["max_tokens", flags.outputTokensMean !== undefined, "--output-tokens-mean"],
    ["max_completion_tokens", flags.outputTokensMean !== undefined, "--output-tokens-mean"],
    ["ignore_eos", flags.ignoreEos || flags.outputTokensMeanDeterministic, "--ignore-eos"],
    ["min_tokens", flags.minTokens !== undefined, "--min-tokens"],
  ];
  for (const [field, set, flag] of pairs)
    if (set && Object.hasOwn(extra, field))
      throw flagError("--extra-inputs", `"${field}" conflicts with ${flag}, which sets it`);
}

export interface ProfilePlan {
  base: Omit<RunLoadPointOptions, "loadPoint">;
  /** One point, an explicit sweep, or the automatic saturation sweep. */
  points: LoadPoint[] | { auto: number; distribution: "constant" | "poisson" | "gamma" };
  notes: string[];
}

function flagError(flag: string, problem: string, hint?: string): UserError {
  return new UserError(`${flag}: ${problem}`, hint ? { hint } : {});
}

/** The dataset plan of the chosen workload kind from its flags. */
function datasetOf(
  flags: ProfileFlags,
  workloadKind: WorkloadKind,
  numEntries: number,
): DatasetPlan {
  const path = flags.inputFile ?? "";
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
}

/** `--extra-inputs` (no repeats, no field another flag sets) and `-H` headers. */
function requestExtras(flags: ProfileFlags): {
  extraInputs: Record<string, unknown>;
  headers: Record<string, string>;
} {
  const extraInputs: Record<string, unknown> = {};
  for (const e of flags.extraInputs) {
    for (const [k, v] of Object.entries(parseExtraInput(e))) {
      // genai-perf refuses a repeated name too ("Input name already exists").
      if (Object.hasOwn(extraInputs, k)) throw flagError("--extra-inputs", `"${k}" is given twice`);
      extraInputs[k] = v;
    }
  }
  refuseBodyConflicts(flags, extraInputs);
  const headers: Record<string, string> = {};
  for (const h of flags.header) {
    const [k, v] = parseHeader(h);
    headers[k] = v;
  }
  return { extraInputs, headers };
}

/** The load point(s): trace replay, a sweep, one rate, or one concurrency (default 1). */
function loadPointsOf(
  flags: ProfileFlags,
  workloadKind: WorkloadKind,
  distribution: "constant" | "poisson" | "gamma",
  paDistribution: "constant" | "poisson" | undefined,
): { replay: boolean; points: ProfilePlan["points"] } {
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
    throw flagError(
      "--fixed-schedule",
      `replays recorded timestamps; it cannot be combined with ${flags.sweep ? "--sweep" : "--concurrency"}`,
    );
  let points: ProfilePlan["points"];
  if (replay) points = [rateLp(flags.requestRate ?? 1)];
  else if (flags.sweep) {
    const sw = parseSweep(flags.sweep);
    if (sw.kind === "auto")
      points = {
        auto: sw.points,
        distribution: flags.requestDistribution ?? paDistribution ?? "poisson",
      };
    else if (sw.kind === "concurrency")
      points = sw.values.map((c) => ({ kind: "concurrency", concurrency: c }));
    else points = sw.values.map(rateLp);
  } else if (flags.requestRate !== undefined) points = [rateLp(flags.requestRate)];
  else points = [{ kind: "concurrency", concurrency: flags.concurrency ?? 1 }];
  return { replay, points };
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
  let origin: string;
  try {
    origin = normalizeUrl(flags.url);
  } catch {
    origin = "null";
  }
  if (origin === "null" || !/^https?:\/\//.test(origin))
    throw flagError(
      "-u/--url",
      `"${flags.url.slice(0, 80)}" is not an http(s) server address`,
      "give host:port (e.g. localhost:8000) or http://host:port",
    );
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
  refuseIgnoredFlags(flags, workloadKind, pa.requestDistribution);
  const dataset = datasetOf(flags, workloadKind, numEntries);
  const tokensIssue = datasetTokensIssue(dataset as Parameters<typeof datasetTokensIssue>[0]);
  if (tokensIssue) {
    const flag = {
      numDatasetEntries: "--num-dataset-entries",
      groups: "--groups",
      users: "--users",
    }[tokensIssue.path[2] as "numDatasetEntries" | "groups" | "users"];
    throw flagError(flag, tokensIssue.message.replace(/\(LIMITS/, "(LIMITS"));
  }
  const { extraInputs, headers } = requestExtras(flags);
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
  const { replay, points } = loadPointsOf(
    flags,
    workloadKind,
    distribution,
    pa.requestDistribution,
  );
  base.fixedSchedule = replay;
  return { base, points, notes };
}
