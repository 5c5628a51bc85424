/**
 * What differs between the two arms of an A/B, computed from their plans: the report says it, and
 * warns when more than one factor differs (then a delta cannot be attributed to any one of them).
 * Pure. Differences are grouped into factors; within the engine factor, what KVCached implies
 * (its env, the dropped --gpu-memory-utilization, the emulator's cache cap) counts as the engine
 * env, not as separate flags, so a KVCached pair differs in the engine image and its env only.
 */
import type { EnginePlan, StackPlan } from "./plan-types.ts";

export type DifferenceFactor =
  | "endpoint"
  | "engine"
  | "router"
  | "models"
  | "placement"
  | "hardware"
  | "workload";

export interface ArmDifference {
  factor: DifferenceFactor;
  /** e.g. "engine image", "router policy". */
  what: string;
  a: string;
  b: string;
}

const MEM_FLAG = "--gpu-memory-utilization";

/** Engine flags without the memory flag that KVCached replaces (compared only when kvcached agrees). */
function flagsOf(e: EnginePlan, dropMemory: boolean): string {
  if (!dropMemory) return e.args.join(" ");
  const out: string[] = [];
  for (let i = 0; i < e.args.length; i++) {
    const a = e.args[i]!;
    if (a === MEM_FLAG) i++;
    else if (!a.startsWith(`${MEM_FLAG}=`)) out.push(a);
  }
  return out.join(" ");
}

function envText(e: EnginePlan): string {
  const entries = Object.entries(e.env).sort(([x], [y]) => x.localeCompare(y));
  if (!entries.length) return e.kvcached ? "KVCached" : "(none)";
  // Per-engine values (the IPC name) are shown by their pattern, so equal setups read equal.
  return entries.map(([k, v]) => `${k}=${v.split(e.name).join("<engine>")}`).join(" ");
}

/** One side's values, per engine name → distinct values joined (most plans have one). */
function summary(engines: readonly EnginePlan[], f: (e: EnginePlan) => string): string {
  return [...new Set(engines.map(f))].join("; ");
}

function perEngine(
  a: StackPlan,
  b: StackPlan,
  f: (e: EnginePlan, other: EnginePlan | undefined) => string,
): { differs: boolean; a: string; b: string } {
  const bBy = new Map(b.engines.map((e) => [e.name, e]));
  const aBy = new Map(a.engines.map((e) => [e.name, e]));
  let differs = false;
  for (const e of a.engines) {
    const o = bBy.get(e.name);
    if (o && f(e, o) !== f(o, e)) differs = true;
  }
  return {
    differs,
    a: summary(a.engines, (e) => f(e, bBy.get(e.name))),
    b: summary(b.engines, (e) => f(e, aBy.get(e.name))),
  };
}

const json = (v: unknown) => JSON.stringify(v);

/** The load an arm drives (teardown and interleaving are how the run goes, not what it measures). */
function loadOf(p: StackPlan): string {
  const { destroyAfterRun: _d, interleaveArms: _i, ...load } = p.runner;
  return json(load);
}

export function armDifferences(a: StackPlan, b: StackPlan): ArmDifference[] {
  const out: ArmDifference[] = [];
  const add = (factor: DifferenceFactor, what: string, x: string, y: string) => {
    if (x !== y) out.push({ factor, what, a: x, b: y });
  };

  // Hardware: where it runs.
  add("hardware", "target", a.target, b.target);
  if (a.endpoint || b.endpoint) {
    // Running endpoints: the kit deployed nothing, so what differs is which server was measured
    // (what runs behind each URL is the user's to state; the report shows the URL).
    const where = (p: StackPlan) => p.endpoint?.url ?? `${p.target} deployment`;
    add("endpoint", "endpoint URL", where(a), where(b));
    add(
      "hardware",
      "engines",
      a.emulated ? "emulated (engine-sim)" : "as served",
      b.emulated ? "emulated (engine-sim)" : "as served",
    );
    add("workload", "workload", loadOf(a), loadOf(b));
    return out;
  }
  add(
    "hardware",
    "GPUs",
    a.hosts.map((h) => `${h.gpuIds.length}× ${h.gpuType}`).join(", "),
    b.hosts.map((h) => `${h.gpuIds.length}× ${h.gpuType}`).join(", "),
  );
  add(
    "hardware",
    "engines",
    a.emulated ? "emulated (engine-sim)" : "vLLM",
    b.emulated ? "emulated (engine-sim)" : "vLLM",
  );

  // Models: what is served.
  const modelsOf = (p: StackPlan) =>
    p.engines
      .map(
        (e) =>
          `${e.name}=${e.hfPath}${e.quantization ? `/${e.quantization}` : ""}@${e.maxModelLen}`,
      )
      .sort()
      .join(", ");
  add("models", "models and replicas", modelsOf(a), modelsOf(b));

  // Placement: which GPUs each engine has (same engines assumed; otherwise "models" says so).
  const placementOf = (p: StackPlan) =>
    p.engines
      .map((e) => `${e.name}→${e.gpus.join("+")}`)
      .sort()
      .join(", ");
  add("placement", "engine placement", placementOf(a), placementOf(b));

  // Engine: image, env (with what KVCached implies), flags, emulator.
  // A built image says what it is built from: the A/B then reads "X" vs "X + kvcached".
  const image = perEngine(a, b, (e) =>
    e.build ? `${e.build.from} + kvcached ${e.build.kvcached} (built: ${e.image})` : e.image,
  );
  if (image.differs) out.push({ factor: "engine", what: "engine image", a: image.a, b: image.b });
  const env = perEngine(a, b, (e) => envText(e));
  const kv = perEngine(a, b, (e) => String(e.kvcached));
  if (env.differs || kv.differs)
    out.push({ factor: "engine", what: "engine env", a: env.a, b: env.b });
  const flags = perEngine(a, b, (e, o) => flagsOf(e, o !== undefined && o.kvcached !== e.kvcached));
  if (flags.differs) out.push({ factor: "engine", what: "engine flags", a: flags.a, b: flags.b });
  const emu = perEngine(a, b, (e, o) =>
    json({
      profile: e.emulator.profile,
      startupDelaySec: e.emulator.startupDelaySec,
      // The cache cap is KVCached's (counted in its env) when only one side has KVCached.
      ...(o && o.kvcached !== e.kvcached ? {} : { maxCachedTokens: e.emulator.maxCachedTokens }),
      prefixCaching: e.prefixCaching,
    }),
  );
  if (emu.differs) out.push({ factor: "engine", what: "engine settings", a: emu.a, b: emu.b });

  // Router.
  add("router", "router policy", a.router.policy, b.router.policy);
  add("router", "router options", json(a.router.options), json(b.router.options));
  add("router", "router image", a.router.image, b.router.image);
  add(
    "router",
    "router settings",
    `poll ${a.router.pollIntervalMs} ms, timeout ${a.router.requestTimeoutMs} ms`,
    `poll ${b.router.pollIntervalMs} ms, timeout ${b.router.requestTimeoutMs} ms`,
  );

  // Workload (an experiment refuses arms with different loads; stored runs may still differ).
  add("workload", "workload", loadOf(a), loadOf(b));
  return out;
}

/** The factors that differ, in order of first appearance. */
export function differingFactors(d: readonly ArmDifference[]): DifferenceFactor[] {
  return [...new Set(d.map((x) => x.factor))];
}

/** A warning when the A/B cannot attribute its delta to one thing; undefined when it can. */
export function attributionWarning(d: readonly ArmDifference[]): string | undefined {
  const factors = differingFactors(d);
  if (factors.length === 0)
    return "The arms' plans do not differ: any delta between them is noise or the host, not a setting.";
  // Within the engine factor: KVCached on one side and another vLLM on the other is two things.
  const version = d.find((x) => x.what === "engine version (as run)");
  if (factors.length === 1 && version && d.some((x) => x.what === "engine env"))
    return `The arms ran different vLLM versions (${version.a} vs ${version.b}) as well as KVCached on one side: the delta mixes the two. Leave engine.images.managed unset (the baseline's image + kvcached, built on the host) or give a KVCached image of the baseline's vLLM version.`;
  if (factors.length === 1) return undefined;
  const parts = factors.map(
    (f) =>
      `${f} (${d
        .filter((x) => x.factor === f)
        .map((x) => x.what)
        .join(", ")})`,
  );
  return `More than one thing differs between the arms: ${parts.join("; ")}. The delta cannot be attributed to any one of them; use a shipped pair that differs in one thing (gcp-kvcached-off/-on, gcp-router-rr/-lb).`;
}
