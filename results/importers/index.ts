/**
 * `inferbench import`: a peer tool's result files → inferbench's artifact layout, which compare
 * reads like its own artifact folders:
 *
 *   OUT/import.json                    tool, version, source files (sha256), definitions, points
 *   OUT/<model>-openai-<type>-<point>/
 *     profile_export_inferbench_requests.jsonl   per-request records (inferbench's schema)
 *     profile_export_inferbench.json             the point's metric definitions and provenance
 *     <the tool's files, copied unchanged>
 *
 * The whole import is built under OUT.partial and renamed at the end: a failure leaves nothing.
 */
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { writeFileAtomicSync } from "../../lib/atomic.ts";
import { InputFileError, UserError } from "../../lib/errors.ts";
import { readJsonFile } from "../../lib/json-file.ts";
import type { PointData, RequestSample, SideData } from "../compare.ts";
import { bigintReplacer } from "../genai-perf/artifacts.ts";
import { addExportPoint, RECORDS_FILE, readRecords } from "../run-sides.ts";
import { importAiperf } from "./aiperf.ts";
import { importGenAiPerf } from "./genai-perf.ts";
import { importPerfAnalyzer } from "./perf-analyzer.ts";
import {
  DEFINED_METRICS,
  IMPORT_FILE,
  IMPORT_SCHEMA_VERSION,
  type ImportedRun,
  INFERBENCH_DEFINITIONS,
  isRecord,
  type MetricDefinitions,
  PEER_TOOLS,
  type PeerTool,
} from "./types.ts";

export { IMPORT_FILE, INFERBENCH_DEFINITIONS, PEER_TOOLS, type PeerTool };

export function readPeerRun(from: string, path: string): ImportedRun {
  switch (from) {
    case "aiperf":
      return importAiperf(path);
    case "genai-perf":
      return importGenAiPerf(path);
    case "perf-analyzer":
      return importPerfAnalyzer(path);
    default:
      throw new UserError(`--from: "${from}" is not one of ${PEER_TOOLS.join(", ")}`);
  }
}

const EXTRAS = "profile_export_inferbench.json";

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/** Writes an import to `out` (which must not exist, or be an empty folder). Returns the files. */
export function writeImport(
  run: ImportedRun,
  out: string,
  opts: { version: string; emulated: boolean },
): string[] {
  const dir = resolve(out);
  if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0))
    throw new UserError(`--out ${dir}: exists and is not empty; an import never overwrites`);
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const written: string[] = [];
  const sources: { path: string; sha256: string; bytes: number }[] = [];
  const root = statSync(run.source).isDirectory() ? run.source : dirname(run.source);
  try {
    const folders = new Set<string>();
    for (const p of run.points) {
      if (folders.has(p.folder))
        throw new UserError(`two load points map to the same folder ${p.folder}`);
      folders.add(p.folder);
      const pd = join(partial, p.folder);
      mkdirSync(pd, { recursive: true });
      writeFileAtomicSync(
        join(pd, RECORDS_FILE),
        p.records.map((r) => `${JSON.stringify(r, bigintReplacer)}\n`).join(""),
      );
      const extras = {
        imported: { tool: run.tool, toolVersion: run.toolVersion, source: run.source },
        metric_definitions: run.definitions,
        load_point: { mode: p.mode, value: p.value },
        workload: { endpoint: p.endpoint, streaming: p.streaming },
      };
      writeFileAtomicSync(join(pd, EXTRAS), `${JSON.stringify(extras, null, 2)}\n`);
      for (const f of p.copies) {
        copyFileSync(f, join(pd, basename(f)));
        sources.push({
          path: relative(root, f) || basename(f),
          sha256: sha256(f),
          bytes: statSync(f).size,
        });
      }
      written.push(join(dir, p.folder, RECORDS_FILE), join(dir, p.folder, EXTRAS));
    }
    const manifest = {
      schemaVersion: IMPORT_SCHEMA_VERSION,
      tool: run.tool,
      toolVersion: run.toolVersion,
      ...(run.sourceSchemaVersion ? { sourceSchemaVersion: run.sourceSchemaVersion } : {}),
      source: run.source,
      files: sources,
      importedAt: new Date().toISOString(),
      importedBy: `inferbench ${opts.version}`,
      emulated: opts.emulated,
      definitions: run.definitions,
      points: run.points.map((p) => ({
        folder: p.folder,
        model: p.model,
        endpoint: p.endpoint,
        streaming: p.streaming,
        mode: p.mode,
        value: p.value,
        requests: p.records.length,
        errors: p.records.filter((r) => r.status === "error").length,
      })),
      checks: run.checks,
      notes: run.notes,
    };
    writeFileAtomicSync(join(partial, IMPORT_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    if (existsSync(dir)) rmSync(dir, { recursive: true });
    renameSync(partial, dir);
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    throw err;
  }
  return [join(dir, IMPORT_FILE), ...written];
}

interface ImportManifest {
  schemaVersion: number;
  tool: string;
  toolVersion: string;
  emulated?: boolean;
  definitions: MetricDefinitions;
  points: { folder: string; model: string; endpoint: string; mode: string; value: number }[];
}

export function readImportManifest(root: string): ImportManifest {
  const file = join(root, IMPORT_FILE);
  const m = readJsonFile<ImportManifest>(file, "import manifest");
  if (m.schemaVersion !== IMPORT_SCHEMA_VERSION)
    throw new InputFileError(
      file,
      undefined,
      `schemaVersion: expected ${IMPORT_SCHEMA_VERSION}, got ${JSON.stringify(m.schemaVersion)}`,
    );
  for (const k of DEFINED_METRICS)
    if (!isRecord(m.definitions?.[k]) || typeof m.definitions[k].id !== "string")
      throw new InputFileError(file, undefined, `definitions.${k}: expected {tool, id, text}`);
  if (!Array.isArray(m.points) || m.points.length === 0)
    throw new InputFileError(file, undefined, "points: expected a non-empty array");
  return m;
}

/** The metric definitions a compare side was measured with (an import's, else inferbench's). */
export function definitionsOf(folder: string): MetricDefinitions {
  return existsSync(join(folder, IMPORT_FILE))
    ? readImportManifest(folder).definitions
    : INFERBENCH_DEFINITIONS;
}

/** A compare side from an import folder; the label names the tool that measured it. */
export function loadImportedSide(root: string, label: string): SideData {
  const m = readImportManifest(root);
  const points: PointData[] = [];
  const workload: SideData["workload"] = {};
  for (const p of m.points) {
    const samples: RequestSample[] = readRecords(join(root, p.folder, RECORDS_FILE), 0).filter(
      (r) => r.model === p.model,
    );
    addExportPoint({ points, workload }, { ...p, samples });
  }
  return {
    label: `${label} (${m.tool}${m.toolVersion ? ` ${m.toolVersion}` : ""})`,
    source: root,
    emulated: m.emulated === true,
    slo: {},
    workload,
    points,
  };
}

/**
 * Differences between two sides' metric definitions, in words; empty when they agree. Compare
 * refuses a non-empty list unless --allow-mixed-definitions.
 */
export function definitionDifferences(a: MetricDefinitions, b: MetricDefinitions): string[] {
  return DEFINED_METRICS.filter((k) => a[k].id !== b[k].id).map(
    (k) => `${k}: ${a[k].tool} measures "${a[k].text}", ${b[k].tool} measures "${b[k].text}"`,
  );
}
