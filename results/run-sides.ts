/**
 * Reads a stored run back into comparison inputs: per arm, per model × load point, the measured
 * requests (from the runner's per-request records), validity, and the server view.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicSync } from "../lib/atomic.ts";
import { InputFileError } from "../lib/errors.ts";
import { readJsonFile } from "../lib/json-file.ts";
import type { Arm, LoadPoint, StackPlan } from "../stacks/plan-types.ts";
import {
  compareSides,
  comparisonCsv,
  type PointData,
  type RequestSample,
  type RunContext,
  runContext,
  type SideData,
} from "./compare.ts";
import type { ArmRan, Comparison } from "./compare-types.ts";
import { exportNames } from "./genai-perf/artifacts.ts";
import { writeReport } from "./report/index.ts";
import { type PointServerMetrics, serverView } from "./server-metrics.ts";
import {
  DEPLOYED_IMAGES_FILE,
  type DeployedImage,
  type PointRecord,
  type RunStore,
} from "./store.ts";

/** The runner's per-request records file inside a GenAI-Perf artifact folder. */
export const RECORDS_FILE = exportNames("profile_export.json").requestsJsonl;

export interface RawRecord {
  model?: string;
  status?: string;
  backend?: string;
  sent_ns?: string | number;
  end_ns?: string | number;
  ttft_ns?: number;
  latency_ns?: number;
  osl_tokens?: number;
}

/**
 * What no measured request can be: times that are not finite numbers, an end before the send, a
 * TTFT or latency below zero or above the request's own end-to-end time, a fractional or negative
 * token count. Pure; undefined when the record is possible.
 */
export function recordProblem(r: RawRecord): string | undefined {
  const sent = Number(r.sent_ns);
  const end = Number(r.end_ns);
  if (!Number.isFinite(sent) || !Number.isFinite(end))
    return `sent_ns ${JSON.stringify(r.sent_ns)} / end_ns ${JSON.stringify(r.end_ns)} are not finite numbers`;
  if (end < sent) return `end_ns ${end} is before sent_ns ${sent}`;
  const e2e = end - sent;
  for (const [k, v] of [
    ["ttft_ns", r.ttft_ns],
    ["latency_ns", r.latency_ns],
  ] as const) {
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      return `${k} ${JSON.stringify(v)} is not a non-negative number`;
    // 1 µs of slack: the times come from one clock but are rounded separately.
    if (v > e2e + 1000)
      return `${k} ${v} exceeds the request's end-to-end time ${e2e} (end_ns − sent_ns)`;
  }
  if (r.ttft_ns !== undefined && r.latency_ns !== undefined && r.ttft_ns > r.latency_ns + 1000)
    return `ttft_ns ${r.ttft_ns} exceeds latency_ns ${r.latency_ns}`;
  const osl = r.osl_tokens;
  if (osl !== undefined && !(Number.isInteger(osl) && osl >= 0))
    return `osl_tokens ${JSON.stringify(osl)} is not a non-negative integer`;
  return undefined;
}

/** Reads JSONL request records; a corrupt line is an error naming file and line. */
export function readRecords(file: string, repeat: number): (RequestSample & { model: string })[] {
  if (!existsSync(file))
    throw new InputFileError(
      file,
      undefined,
      "missing per-request records",
      "re-run the load point (resume skips only complete points)",
    );
  const out: (RequestSample & { model: string })[] = [];
  const lines = readFileSync(file, "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    let r: RawRecord;
    try {
      r = JSON.parse(line) as RawRecord;
    } catch {
      throw new InputFileError(file, i + 1, "not valid JSON");
    }
    if (r.sent_ns === undefined || r.end_ns === undefined || typeof r.model !== "string") {
      throw new InputFileError(file, i + 1, "record lacks model, sent_ns or end_ns");
    }
    const impossible = recordProblem(r);
    if (impossible) throw new InputFileError(file, i + 1, `impossible record: ${impossible}`);
    const startMs = Number(r.sent_ns) / 1e6;
    const endMs = Number(r.end_ns) / 1e6;
    const sample: RequestSample & { model: string } = {
      model: r.model,
      ok: r.status === "ok",
      startMs,
      endMs,
      repeat,
    };
    if (r.ttft_ns !== undefined) sample.ttftMs = r.ttft_ns / 1e6;
    if (r.osl_tokens !== undefined) sample.osl = r.osl_tokens;
    if (r.backend) sample.backend = r.backend;
    // GenAI-Perf ITL: (latency − TTFT) / (OSL − 1).
    if (
      r.ttft_ns !== undefined &&
      r.latency_ns !== undefined &&
      r.osl_tokens !== undefined &&
      r.osl_tokens > 1
    ) {
      sample.itlMs = (r.latency_ns - r.ttft_ns) / (r.osl_tokens - 1) / 1e6;
    }
    out.push(sample);
  }
  return out;
}

function pointText(lp: LoadPoint): {
  point: string;
  kind: PointData["pointKind"];
  value: number;
  requestedRps?: number;
} {
  return lp.kind === "concurrency"
    ? { point: `concurrency ${lp.concurrency}`, kind: "concurrency", value: lp.concurrency }
    : {
        point: `request rate ${lp.requestRate}/s`,
        kind: "request-rate",
        value: lp.requestRate,
        requestedRps: lp.requestRate,
      };
}

/**
 * One point of a GenAI-Perf-style folder side (an artifact folder, or a peer's run imported): a
 * model at one perf_analyzer experiment (`concurrency` or `request_rate` and its value), with the
 * workload descriptor both kinds of side share, so like is compared with like. Adds to `into`.
 */
export function addExportPoint(
  into: { points: PointData[]; workload: SideData["workload"] },
  p: {
    model: string;
    mode: string;
    value: number;
    samples: RequestSample[];
    endpoint: string;
    valid?: boolean;
    invalidReason?: string;
  },
): void {
  const rate = p.mode === "request_rate";
  into.points.push({
    model: p.model,
    point: rate ? `request rate ${p.value}/s` : `concurrency ${p.value}`,
    pointKind: rate ? "request-rate" : "concurrency",
    pointValue: p.value,
    ...(rate ? { requestedRps: p.value } : {}),
    samples: p.samples,
    repeats: 1,
    valid: p.valid ?? true,
    ...(p.invalidReason ? { invalidReason: p.invalidReason } : {}),
  });
  into.workload[`${p.model} ${rate ? "request_rate" : "concurrency"}${p.value}`] =
    `${p.samples.length} requests, ${p.endpoint}`;
}

export function workloadDescriptor(plan: StackPlan): SideData["workload"] {
  const w = plan.runner.workload;
  return {
    dataset: JSON.stringify(w.dataset),
    endpoint: w.endpointType,
    streaming: w.streaming,
    requestCount: w.requestCount ?? "default",
    outputTokens: `${w.outputTokensMean ?? "free"}±${w.outputTokensStddev}${w.ignoreEos ? " ignore_eos" : ""}`,
    models: w.models.join(","),
    loadPoints: plan.runner.loadPoints.map((lp) => pointText(lp).point).join("; "),
    seed: plan.runner.seed,
  };
}

export function loadArmSide(
  store: RunStore,
  arm: Arm,
  plan: StackPlan,
  emulated: boolean,
): SideData {
  const pointsDir = join(store.armDir(arm), "points");
  const stored: PointRecord[] = existsSync(pointsDir)
    ? readdirSync(pointsDir)
        .filter((d) => existsSync(join(pointsDir, d, "point.json")))
        .map((d) =>
          readJsonFile<PointRecord>(join(pointsDir, d, "point.json"), "stored load point"),
        )
    : [];
  const byKey = new Map<string, PointData>();
  for (const sp of stored) {
    const records = readRecords(join(store.dir, sp.artifactDir, RECORDS_FILE), sp.repeat);
    const metricsFile = join(
      pointsDir,
      sp.repeat > 0 ? `${sp.label}-r${sp.repeat}` : sp.label,
      "server-metrics.json",
    );
    const metrics = existsSync(metricsFile)
      ? readJsonFile<PointServerMetrics>(metricsFile, "server metrics")
      : undefined;
    const pt = pointText(sp.loadPoint);
    for (const model of plan.runner.workload.models) {
      const key = `${model}\u0000${pt.point}`;
      let pd = byKey.get(key);
      if (!pd) {
        pd = {
          model,
          point: pt.point,
          pointKind: pt.kind,
          pointValue: pt.value,
          samples: [],
          repeats: 0,
          valid: true,
        };
        if (pt.requestedRps !== undefined) pd.requestedRps = pt.requestedRps;
        byKey.set(key, pd);
      }
      pd.repeats++;
      pd.samples.push(...records.filter((r) => r.model === model));
      if (!sp.valid) {
        pd.valid = false;
        pd.invalidReason = sp.invalidReasons.join("; ");
      }
      // Server view from the first repeat's metrics (time series are per point, not pooled).
      if (metrics && !pd.server) {
        const engines = Object.entries(sp.engines)
          .filter(([, m]) => m === model)
          .map(([e]) => e);
        pd.server = serverView(metrics, engines);
      }
    }
  }
  const order = plan.runner.loadPoints.map((lp) => pointText(lp).point);
  const points = [...byKey.values()].sort(
    (x, y) =>
      plan.runner.workload.models.indexOf(x.model) - plan.runner.workload.models.indexOf(y.model) ||
      order.indexOf(x.point) - order.indexOf(y.point),
  );
  return {
    label: arm,
    source: `${store.runId}/${arm}`,
    emulated,
    slo: plan.runner.slo,
    workload: workloadDescriptor(plan),
    points,
  };
}

export function loadRunSides(store: RunStore): { a: SideData; b: SideData } {
  const m = store.readManifest();
  const [armA, armB] = m.arms as [Arm, Arm];
  return {
    a: loadArmSide(store, armA, m.plans[armA]!, m.emulated),
    b: loadArmSide(store, armB, m.plans[armB]!, m.emulated),
  };
}

/** What served an arm: its points' engine versions, and the host's image ids when recorded. */
export function armRan(store: RunStore, arm: Arm): ArmRan {
  const versions = new Set<string>();
  const points = join(store.armDir(arm), "points");
  for (const d of existsSync(points) ? readdirSync(points).sort() : []) {
    const f = join(points, d, "point.json");
    if (!existsSync(f)) continue;
    const rec = readJsonFile<PointRecord>(f, "point record");
    for (const v of Object.values(rec.engineVersions ?? {})) versions.add(v);
  }
  const ran: ArmRan = { engineVersions: [...versions].sort() };
  const imagesFile = join(store.armDir(arm), DEPLOYED_IMAGES_FILE);
  if (existsSync(imagesFile)) {
    const images = readJsonFile<DeployedImage[]>(imagesFile, "deployed images");
    ran.images = Object.fromEntries(
      images.map((i) => [i.service, i.repoDigests[0] ? `${i.id} (${i.repoDigests[0]})` : i.id]),
    );
  }
  return ran;
}

/** A stored run's context: its manifest's (plans, cost) and what its arms ran. */
export function storedRunContext(store: RunStore): RunContext | undefined {
  const m = store.readManifest();
  const ctx = runContext(m);
  const [a, b] = m.arms;
  return ctx && a && b ? { ...ctx, ran: { a: armRan(store, a), b: armRan(store, b) } } : ctx;
}

/**
 * Compares a stored run's arms and writes the derived files beside its measurements:
 * comparison.json/.csv, report.md, report.html and the charts. Used at the end of a run and by
 * `inferbench report`; measurements are never touched.
 */
export async function compareRun(
  store: RunStore,
): Promise<{ comparison: Comparison; reportHtml: string }> {
  const sides = loadRunSides(store);
  // The run's own context: what differs between the arms, and the cost of its billing window.
  const run = storedRunContext(store);
  const comparison = compareSides(sides.a, sides.b, run ? { run } : {});
  store.writeJson(store.file("comparison.json"), comparison);
  writeFileAtomicSync(store.file("comparison.csv"), comparisonCsv(comparison));
  await writeReport(comparison, store.dir);
  return { comparison, reportHtml: store.file("report.html") };
}
