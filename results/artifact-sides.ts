/**
 * A comparison side from GenAI-Perf artifact folders (ours or a real genai-perf run): every
 * `profile_export.json` under a folder becomes one model × load point, its requests re-measured
 * with the GenAI-Perf metric math. Our own per-request records are used when present (they keep
 * failed requests, which GenAI-Perf's raw export does not).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { InputFileError, UserError } from "../lib/errors.ts";
import { getTokenizer } from "../lib/tokenizer.ts";
import type { PointData, RequestSample, SideData } from "./compare.ts";
import { requestMetrics } from "./genai-perf/metrics.ts";
import { profileExportProblem, readProfileExport } from "./genai-perf/reader.ts";
import { IMPORT_FILE, loadImportedSide } from "./importers/index.ts";
import { addExportPoint, RECORDS_FILE, readRecords } from "./run-sides.ts";

const RAW = "profile_export.json";

/** perf_analyzer raw exports in a folder: `profile_export.json` or `<name>profile_export.json` (--profile-export-file). */
export function rawExportsIn(folder: string): string[] {
  return readdirSync(folder)
    .filter((f) => f.endsWith(RAW))
    .sort()
    .map((f) => join(folder, f));
}

/** Folders under `root` (itself included) for which `has` holds, searched up to `depth` levels down; a match is not descended into. */
function findFolders(root: string, has: (folder: string) => boolean, depth = 3): string[] {
  if (!statSync(root).isDirectory()) return [];
  if (has(root)) return [root];
  if (depth === 0) return [];
  return readdirSync(root)
    .sort()
    .flatMap((d) => {
      const p = join(root, d);
      return statSync(p).isDirectory() ? findFolders(p, has, depth - 1) : [];
    });
}

/** Folders holding a raw export, searched up to three levels down. */
export function findArtifactFolders(root: string): string[] {
  return findFolders(root, (f) => rawExportsIn(f).length > 0);
}

/** GenAI-Perf summaries (`*_genai_perf.json` / `.csv`) in a folder. */
function summariesIn(folder: string): string[] {
  return readdirSync(folder)
    .filter((f) => /_genai_perf\.(json|csv)$/.test(f))
    .sort()
    .map((f) => join(folder, f));
}

function modelOf(folder: string, payload: string): string {
  try {
    const body = JSON.parse(payload) as { model?: unknown };
    if (typeof body.model === "string") return body.model;
  } catch {
    // fall through to the folder name
  }
  return basename(folder).replace(/-openai-.*$/, "");
}

export function loadArtifactSide(root: string, label: string): SideData {
  if (!existsSync(root)) throw new UserError(`${root}: no such run id or folder`);
  if (existsSync(join(root, IMPORT_FILE))) return loadImportedSide(root, label); // inferbench import
  const folders = findArtifactFolders(root);
  if (folders.length === 0) {
    const summaries = findFolders(root, (f) => summariesIn(f).length > 0).flatMap(summariesIn);
    if (summaries.length > 0)
      throw new UserError(
        `${root}: found GenAI-Perf summaries (${summaries.slice(0, 3).join(", ")}${summaries.length > 3 ? ", …" : ""}) but no ${RAW}: compare re-measures every request, so it needs the raw per-request export`,
        {
          hint: `genai-perf writes ${RAW} beside the summary: copy it from the original artifact folder, or re-run the profile`,
        },
      );
    throw new UserError(`${root}: no ${RAW} found (not a GenAI-Perf artifact folder)`);
  }
  const points: PointData[] = [];
  const workload: SideData["workload"] = {};
  let emulated = false;
  for (const folder of folders) {
    const extras = join(folder, "profile_export_inferbench.json");
    if (existsSync(extras) && /"emulated":\s*true/.test(readFileSync(extras, "utf8")))
      emulated = true;
    for (const file of rawExportsIn(folder)) {
      let exp: ReturnType<typeof readProfileExport>;
      try {
        exp = readProfileExport(readFileSync(file, "utf8"));
      } catch (err) {
        throw new InputFileError(
          file,
          undefined,
          `not a perf_analyzer profile export (${(err as Error).message})`,
          "a truncated or hand-edited export cannot be compared; use the file the run wrote",
        );
      }
      const impossible = profileExportProblem(exp);
      if (impossible)
        throw new InputFileError(
          file,
          undefined,
          impossible,
          "the export was edited or corrupted: compare refuses it rather than turn it into a delta",
        );
      const { valid, invalidReason } = validityOf(folder);
      for (const e of exp.experiments) {
        // Multi-model runs interleave models in one experiment: one point per model.
        const byModel = new Map<string, RequestSample[]>();
        const add = (model: string, sample: RequestSample) => {
          const list = byModel.get(model);
          if (list) list.push(sample);
          else byModel.set(model, [sample]);
        };
        const records = join(folder, RECORDS_FILE);
        if (existsSync(records)) {
          for (const r of readRecords(records, 0)) add(r.model, r);
        } else {
          const cache = new Map<string, number>();
          for (const raw of e.requests) {
            const model = modelOf(folder, raw.payload);
            const tokenizer = getTokenizer(model);
            const m = requestMetrics(raw, (t) => tokenizer.count(t), cache);
            const startMs = Number(raw.timestamp) / 1e6;
            if (!m) {
              add(model, { ok: false, startMs, endMs: startMs });
              continue;
            }
            const sample: RequestSample = {
              ok: true,
              startMs,
              endMs: Number(m.endNs) / 1e6,
              ttftMs: m.ttftNs / 1e6,
              osl: m.osl,
            };
            if (m.itlNs !== undefined) sample.itlMs = m.itlNs / 1e6;
            add(model, sample);
          }
        }
        for (const [model, samples] of byModel)
          addExportPoint(
            { points, workload },
            {
              model,
              mode: e.mode,
              value: e.value,
              samples,
              endpoint: exp.endpoint,
              valid,
              ...(invalidReason ? { invalidReason } : {}),
            },
          );
      }
    }
  }
  return { label, source: root, emulated, slo: sloOf(folders), workload, points };
}

/**
 * The validity gate inferbench recorded beside the export (`*_inferbench.json`): a point it marked
 * INVALID stays invalid in a folder comparison. A peer's folder has no such file: valid.
 */
function validityOf(folder: string): { valid: boolean; invalidReason?: string } {
  const f = join(folder, "profile_export_inferbench.json");
  if (!existsSync(f)) return { valid: true };
  let x: { valid?: unknown; invalid_reasons?: unknown };
  try {
    x = JSON.parse(readFileSync(f, "utf8"));
  } catch (err) {
    throw new InputFileError(f, undefined, `not valid JSON (${(err as Error).message})`);
  }
  if (x.valid !== false) return { valid: true };
  const reasons = Array.isArray(x.invalid_reasons) ? x.invalid_reasons.map(String) : [];
  return { valid: false, invalidReason: reasons.join("; ") || "marked INVALID by the run" };
}

/** GenAI-Perf's goodput names → the comparison's SLO keys (ms). */
const GOODPUT_SLO = {
  time_to_first_token: "ttftMs",
  inter_token_latency: "itlMs",
  request_latency: "e2eMs",
} as const;

/**
 * The SLOs the run measured goodput against: `input_config.input.goodput` of the GenAI-Perf
 * summary (genai-perf's own `--goodput`, and inferbench's from `slo`), first folder that has one.
 */
function sloOf(folders: readonly string[]): SideData["slo"] {
  for (const folder of folders)
    for (const f of summariesIn(folder).filter((x) => x.endsWith(".json"))) {
      let goodput: unknown;
      try {
        goodput = (
          JSON.parse(readFileSync(f, "utf8")) as {
            input_config?: { input?: { goodput?: unknown } };
          }
        ).input_config?.input?.goodput;
      } catch {
        continue; // a summary is optional: the raw export is what is measured
      }
      if (!goodput || typeof goodput !== "object") continue;
      const slo: SideData["slo"] = {};
      for (const [k, key] of Object.entries(GOODPUT_SLO)) {
        const v = (goodput as Record<string, unknown>)[k];
        if (typeof v === "number" && Number.isFinite(v) && v > 0) slo[key] = v;
      }
      if (Object.keys(slo).length) return slo;
    }
  return {};
}
