/**
 * `--from genai-perf PATH`: a genai-perf run folder (<model>-openai-<type>-<point>/) or the
 * --artifact-dir above several. Each `X_genai_perf.json` needs its raw `X.json` beside it: the
 * requests are re-measured from the raw export (GenAI-Perf math) and checked against genai-perf's
 * own summary: request count and latency must agree, or nothing is imported.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { InputFileError, UserError } from "../../lib/errors.ts";
import { readJsonFile } from "../../lib/json-file.ts";
import { mean } from "../genai-perf/stats.ts";
import { measureRawExport } from "./perf-analyzer.ts";
import {
  fieldError,
  genaiPerfDefinitions,
  type ImportedPoint,
  type ImportedRun,
  isRecord,
} from "./types.ts";

const SUMMARY = /_genai_perf\.json$/;

function runFolders(root: string): string[] {
  const has = (d: string) => readdirSync(d).some((f) => SUMMARY.test(f));
  if (has(root)) return [root];
  return readdirSync(root)
    .map((d) => join(root, d))
    .filter((d) => statSync(d).isDirectory() && has(d))
    .sort();
}

const within = (a: number, b: number, rel: number) =>
  Math.abs(a - b) <= rel * Math.max(Math.abs(b), 1e-9);

/** Compares our re-measurement with genai-perf's summary; timing must agree, tokens may differ. */
function crossCheck(
  file: string,
  summary: Record<string, unknown>,
  p: ImportedPoint,
  checks: string[],
): void {
  const stat = (metric: string, key: string): number => {
    const m = summary[metric];
    const v = isRecord(m) ? m[key] : undefined;
    if (typeof v !== "number") throw fieldError(file, `${metric}.${key}`, "a number", v);
    return v;
  };
  const ok = p.records.filter((r) => r.status === "ok");
  const count = stat("request_count", "avg");
  if (count !== p.records.length)
    throw new InputFileError(
      file,
      undefined,
      `request_count.avg is ${count} but the raw export beside it holds ${p.records.length} requests: truncated, or the two files are from different runs`,
    );
  const latency = mean(ok.map((r) => r.latency_ns! / 1e6));
  const gLatency = stat("request_latency", "avg");
  if (!within(latency, gLatency, 1e-6))
    throw new InputFileError(
      file,
      undefined,
      `request_latency.avg is ${gLatency} ms but the raw export re-measures to ${latency} ms: the files are from different runs`,
    );
  checks.push(
    `${p.folder}: request count ${count} and latency avg ${gLatency.toFixed(3)} ms agree with genai-perf's summary`,
  );
  for (const [metric, key] of [
    ["output_sequence_length", "osl_tokens"],
    ["input_sequence_length", "isl_tokens"],
  ] as const) {
    const g = stat(metric, "avg");
    const ours = mean(ok.map((r) => r[key]!));
    checks.push(
      within(ours, g, 0.005)
        ? `${p.folder}: ${metric} avg ${ours.toFixed(2)} agrees with genai-perf's ${g.toFixed(2)} (same tokenizer)`
        : `${p.folder}: ${metric} avg ${ours.toFixed(2)} vs genai-perf's ${g.toFixed(2)}: genai-perf ran with another tokenizer; the records keep inferbench's count`,
    );
  }
}

export function importGenAiPerf(path: string): ImportedRun {
  const root = resolve(path);
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new UserError(`${root}: expected a genai-perf artifact folder`);
  const folders = runFolders(root);
  if (folders.length === 0)
    throw new UserError(
      `${root}: no *_genai_perf.json here or one level down: not a genai-perf artifact folder`,
      {
        hint: readdirSync(root).some((f) => f.endsWith("_aiperf.json"))
          ? "this looks like AIPerf output: use --from aiperf"
          : undefined,
      },
    );
  const points: ImportedPoint[] = [];
  const checks: string[] = [];
  let version = "";
  for (const folder of folders) {
    for (const s of readdirSync(folder)
      .filter((f) => SUMMARY.test(f))
      .sort()) {
      const summaryFile = join(folder, s);
      const rawFile = join(folder, s.replace(SUMMARY, ".json"));
      if (!existsSync(rawFile))
        throw new InputFileError(
          summaryFile,
          undefined,
          `its raw export ${rawFile} is missing: inferbench re-measures every request from it`,
        );
      const summary = readJsonFile<Record<string, unknown>>(summaryFile, "genai-perf summary");
      const ic = summary["input_config"];
      if (!isRecord(ic) || !isRecord(ic["endpoint"]))
        throw fieldError(
          summaryFile,
          "input_config.endpoint",
          "genai-perf's nested input_config (genai-perf ≥ 0.0.15)",
          isRecord(ic) ? ic["endpoint"] : ic,
        );
      const copies = [
        rawFile,
        summaryFile,
        summaryFile.replace(/\.json$/, ".csv"),
        join(folder, "inputs.json"),
      ].filter((f) => existsSync(f));
      const measured = measureRawExport(rawFile, copies);
      if (measured.length !== 1)
        throw fieldError(
          rawFile,
          "experiments",
          "one experiment (genai-perf runs one load point per folder)",
          measured.length,
        );
      crossCheck(summaryFile, summary, measured[0]!, checks);
      points.push(measured[0]!);
      version ||= typeof summary["version"] === "string" ? summary["version"] : "";
    }
  }
  return {
    tool: "genai-perf",
    toolVersion: version,
    source: root,
    definitions: genaiPerfDefinitions("genai-perf (perf_analyzer timestamps, GenAI-Perf math)"),
    points,
    checks,
    notes: version
      ? []
      : ["genai-perf records no version in its outputs; the nested input_config says ≥ 0.0.15"],
  };
}
