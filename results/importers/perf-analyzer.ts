/**
 * Importers for perf_analyzer's raw profile export (profile_export.json, alone or inside a
 * genai-perf artifact folder). Every request is re-measured with the GenAI-Perf math that
 * inferbench itself uses (results/genai-perf/metrics.ts), so the definitions are GenAI-Perf's;
 * for a genai-perf folder the result is cross-checked against genai-perf's own summary.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { InputFileError, UserError } from "../../lib/errors.ts";
import { getTokenizer } from "../../lib/tokenizer.ts";
import { runFolderName } from "../genai-perf/artifacts.ts";
import { requestMetrics } from "../genai-perf/metrics.ts";
import { readProfileExport } from "../genai-perf/reader.ts";
import {
  fieldError,
  genaiPerfDefinitions,
  type ImportedPoint,
  type ImportedRecord,
  type ImportedRun,
  isRecord,
} from "./types.ts";

const ENDPOINTS: Record<string, "chat" | "completions"> = {
  "v1/chat/completions": "chat",
  "v1/completions": "completions",
};

/** Checks the raw export's structure field by field, so a wrong or cut file names what is wrong. */
function validateRaw(file: string, obj: unknown): void {
  if (!isRecord(obj)) throw fieldError(file, "(top level)", "a JSON object", obj);
  if (!Array.isArray(obj["experiments"]))
    throw fieldError(
      file,
      "experiments",
      "an array (perf_analyzer's profile export)",
      obj["experiments"],
    );
  if (obj["service_kind"] !== "openai")
    throw fieldError(file, "service_kind", '"openai"', obj["service_kind"]);
  if (typeof obj["endpoint"] !== "string" || !(obj["endpoint"] in ENDPOINTS))
    throw fieldError(
      file,
      "endpoint",
      `one of ${Object.keys(ENDPOINTS).join(", ")}`,
      obj["endpoint"],
    );
  (obj["experiments"] as unknown[]).forEach((e, i) => {
    const at = `experiments[${i}]`;
    if (!isRecord(e)) throw fieldError(file, at, "an object", e);
    const ex = e["experiment"];
    if (!isRecord(ex) || (ex["mode"] !== "concurrency" && ex["mode"] !== "request_rate"))
      throw fieldError(
        file,
        `${at}.experiment.mode`,
        '"concurrency" or "request_rate"',
        isRecord(ex) ? ex["mode"] : ex,
      );
    if (typeof ex["value"] !== "number" || !(ex["value"] > 0))
      throw fieldError(file, `${at}.experiment.value`, "a positive number", ex["value"]);
    if (!Array.isArray(e["requests"]) || e["requests"].length === 0)
      throw fieldError(file, `${at}.requests`, "a non-empty array", e["requests"]);
    (e["requests"] as unknown[]).forEach((r, j) => {
      const rat = `${at}.requests[${j}]`;
      if (!isRecord(r)) throw fieldError(file, rat, "an object", r);
      if (typeof r["timestamp"] !== "number")
        throw fieldError(file, `${rat}.timestamp`, "integer ns", r["timestamp"]);
      const inp = r["request_inputs"];
      if (!isRecord(inp) || typeof inp["payload"] !== "string")
        throw fieldError(
          file,
          `${rat}.request_inputs.payload`,
          "the request body as a JSON string",
          isRecord(inp) ? inp["payload"] : inp,
        );
      const ts = r["response_timestamps"];
      const outs = r["response_outputs"];
      if (!Array.isArray(ts)) throw fieldError(file, `${rat}.response_timestamps`, "an array", ts);
      if (!Array.isArray(outs)) throw fieldError(file, `${rat}.response_outputs`, "an array", outs);
      if (ts.length !== outs.length)
        throw new InputFileError(
          file,
          undefined,
          `${rat}: ${ts.length} response_timestamps but ${outs.length} response_outputs`,
        );
    });
  });
}

/** The raw export as parsed JSON (exact big integers come from readProfileExport). */
function parseRaw(file: string): { text: string; obj: Record<string, unknown> } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new InputFileError(file, undefined, `cannot read: ${(err as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new InputFileError(
      file,
      undefined,
      `not valid JSON (${(err as Error).message}): truncated or not a perf_analyzer profile export`,
    );
  }
  validateRaw(file, obj);
  return { text, obj: obj as Record<string, unknown> };
}

/** Re-measures every request of a raw export; one point per experiment. */
export function measureRawExport(file: string, copies: string[]): ImportedPoint[] {
  const { text } = parseRaw(file);
  const exp = readProfileExport(text);
  const endpointType = ENDPOINTS[exp.endpoint]!;
  return exp.experiments.map((e) => {
    const records: ImportedRecord[] = [];
    const cache = new Map<string, number>();
    let model = "";
    let streaming = false;
    e.requests.forEach((raw, index) => {
      const body = JSON.parse(raw.payload) as Record<string, unknown>;
      const m = typeof body["model"] === "string" ? body["model"] : "";
      if (!model) model = m;
      if (body["stream"] === true) streaming = true;
      const tokenizer = getTokenizer(m || "llama3");
      const metrics = requestMetrics(raw, (t) => tokenizer.count(t), cache);
      const sent = raw.timestamp.toString();
      if (!metrics) {
        records.push({
          index,
          model: m,
          status: "error",
          sent_ns: sent,
          end_ns: sent,
          error: "no non-empty response",
        });
        return;
      }
      records.push({
        index,
        model: m,
        status: "ok",
        sent_ns: sent,
        end_ns: metrics.endNs.toString(),
        ttft_ns: metrics.ttftNs,
        latency_ns: metrics.latencyNs,
        isl_tokens: metrics.isl,
        osl_tokens: metrics.osl,
      });
    });
    const mode = e.mode as "concurrency" | "request_rate";
    const lp = {
      mode: mode === "concurrency" ? ("concurrency" as const) : ("request_rate" as const),
      value: e.value,
    };
    return {
      folder: runFolderName([model], endpointType, lp),
      model,
      endpointType,
      endpoint: exp.endpoint,
      streaming,
      mode,
      value: e.value,
      records,
      copies,
    };
  });
}

/** `--from perf-analyzer PATH`: a profile_export.json, or a folder holding one. */
export function importPerfAnalyzer(path: string): ImportedRun {
  const abs = resolve(path);
  let file = abs;
  if (existsSync(abs) && statSync(abs).isDirectory()) {
    const found = readdirSync(abs).filter((f) => f.endsWith("profile_export.json"));
    if (found.length !== 1)
      throw new UserError(
        `${abs}: expected one perf_analyzer profile export (*profile_export.json), found ${found.length}${found.length ? `: ${found.join(", ")}` : ""}`,
      );
    file = join(abs, found[0]!);
  } else if (!existsSync(abs)) throw new UserError(`${abs}: no such file or folder`);
  const dir = dirname(file);
  const summary = join(dir, basename(file).replace(/\.json$/, "_genai_perf.json"));
  if (existsSync(summary))
    throw new UserError(
      `${file}: this is a genai-perf artifact folder (${basename(summary)} beside it)`,
      {
        hint: "import it with --from genai-perf, which also checks genai-perf's own summary",
      },
    );
  const copies = [file, join(dir, "inputs.json")].filter((f) => existsSync(f));
  const points = measureRawExport(file, copies); // validates the file first
  const version = String(
    (JSON.parse(readFileSync(file, "utf8")) as { version?: unknown }).version ?? "",
  );
  const tool = `perf_analyzer${version ? ` ${version}` : ""}`;
  return {
    tool: "perf-analyzer",
    toolVersion: version,
    source: file,
    definitions: genaiPerfDefinitions(`${tool} timestamps, GenAI-Perf math (inferbench)`),
    points,
    checks: [],
    notes: version
      ? []
      : ["perf_analyzer wrote an empty version (a build without version information)"],
  };
}
