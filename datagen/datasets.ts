/**
 * Strict parsers for workload files. Every problem is an InputFileError naming file and line.
 * Pure: text in, rows out (the caller reads the file).
 */
import { InputFileError } from "../lib/errors.ts";
import { LIMITS } from "../stacks/schema.ts";

/** Rows (requests, conversations, windows) one file may hold: LIMITS.datasetEntries. */
export const MAX_ROWS = LIMITS.datasetEntries;
/** Tokens one row may ask for (prompt or output): LIMITS.tokensPerRequest. */
export const MAX_ROW_TOKENS = LIMITS.tokensPerRequest;

function tooManyRows(file: string, line: number | undefined): InputFileError {
  return new InputFileError(
    file,
    line,
    `more than ${MAX_ROWS.toLocaleString("en-US")} rows (LIMITS.datasetEntries: every row is held in memory)`,
    "cut the file, or use maxRequests / --max-requests on traces",
  );
}

export interface InputFileRow {
  line: number;
  text?: string;
  timestamp?: number;
  inputLength?: number;
  outputLength?: number;
  sessionId?: string;
  hashIds?: number[];
  delay?: number;
}

function lineAt(text: string, pos: number): number {
  let line = 1;
  for (let i = 0; i < pos && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function jsonErrorLine(text: string, err: unknown): number | undefined {
  const m = /position (\d+)/.exec(String((err as Error)?.message ?? err));
  if (m) return lineAt(text, Number(m[1]));
  const l = /line (\d+)/.exec(String((err as Error)?.message ?? err));
  return l ? Number(l[1]) : undefined;
}

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

/**
 * GenAI-Perf `--input-file` JSONL: `{"text": ...}` (or `text_input`) rows, or payload rows with
 * `timestamp, input_length, output_length, session_id, hash_ids, delay` (Mooncake traces are such
 * rows).
 */
export function parseInputFileJsonl(text: string, file: string): InputFileRow[] {
  const rows: InputFileRow[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === "") continue;
    const line = i + 1;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (err) {
      throw new InputFileError(file, line, `not valid JSON (${(err as Error).message})`);
    }
    if (!obj || typeof obj !== "object" || Array.isArray(obj))
      throw new InputFileError(file, line, "each line must be a JSON object");
    const o = obj as Record<string, unknown>;
    const row: InputFileRow = { line };
    const t = o["text"] ?? o["text_input"];
    if (t !== undefined) {
      if (typeof t !== "string") throw new InputFileError(file, line, '"text" must be a string');
      row.text = t;
    }
    const num = (key: string, int: boolean, max: number, what: string) => {
      const v = o[key];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (int && !Number.isInteger(v)))
        throw new InputFileError(
          file,
          line,
          `"${key}" must be a non-negative ${int ? "integer" : "number"}; found ${describe(v)}`,
        );
      if (v > max)
        throw new InputFileError(
          file,
          line,
          `"${key}" is ${v}; the most is ${max.toLocaleString("en-US")} (${what})`,
        );
      return v;
    };
    const TOK = "LIMITS.tokensPerRequest";
    row.timestamp = num("timestamp", false, Number.MAX_SAFE_INTEGER, "ms");
    row.inputLength = num("input_length", true, MAX_ROW_TOKENS, TOK);
    row.outputLength = num("output_length", true, MAX_ROW_TOKENS, TOK);
    row.delay = num("delay", false, MAX_TRACE_GAP_MS, "a day in ms");
    const sid = o["session_id"];
    if (sid !== undefined) {
      if (typeof sid !== "string" && typeof sid !== "number")
        throw new InputFileError(
          file,
          line,
          `"session_id" must be a string or a number; found ${describe(sid)}`,
        );
      row.sessionId = String(sid);
    }
    if (o["hash_ids"] !== undefined) {
      const h = o["hash_ids"];
      if (!Array.isArray(h) || !h.every(isInt))
        throw new InputFileError(file, line, '"hash_ids" must be a list of non-negative integers');
      if (h.length > MAX_ROW_TOKENS)
        throw new InputFileError(
          file,
          line,
          `"hash_ids" has ${h.length} ids; the most is ${MAX_ROW_TOKENS}`,
        );
      row.hashIds = h;
    }
    if (row.text === undefined && row.inputLength === undefined)
      throw new InputFileError(
        file,
        line,
        'row has neither "text" nor "input_length"',
        'use {"text": "..."} or {"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]}',
      );
    if (rows.length >= MAX_ROWS) throw tooManyRows(file, line);
    rows.push(row);
  }
  if (rows.length === 0) throw new InputFileError(file, undefined, "no rows");
  // A trace is every row timestamped; some but not all would silently stop being one.
  const stamped = rows.filter((r) => r.timestamp !== undefined);
  if (stamped.length > 0 && stamped.length < rows.length) {
    const missing = rows.find((r) => r.timestamp === undefined)!;
    throw new InputFileError(
      file,
      missing.line,
      `row has no "timestamp" but line ${stamped[0]!.line} has one; give every row a timestamp (a trace) or none`,
    );
  }
  return rows;
}

/** A value's type for messages (dataset values are not secrets, but may be long). */
function describe(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/**
 * Longest wait between two consecutive trace arrivals, after time scaling. Longer is a unit
 * mix-up (µs read as ms) or a broken file; the replay would idle for days. Node timers also
 * overflow past 2^31-1 ms (24.8 days), which this stays well below.
 */
export const MAX_TRACE_GAP_MS = 86_400_000;
/** Longest replay, first arrival to last, after time scaling: a week. */
export const MAX_TRACE_SPAN_MS = 7 * 86_400_000;

/**
 * Checks recorded arrival times in file order: never decreasing, no gap over MAX_TRACE_GAP_MS and
 * no span over MAX_TRACE_SPAN_MS once multiplied by `timeScale`. The refusal names the line.
 */
export function checkTraceTimes(
  rows: readonly { line: number; ms: number }[],
  file: string,
  timeScale: number,
  scaleHint: string,
): void {
  if (rows.length === 0) return;
  const first = rows[0]!;
  for (let i = 1; i < rows.length; i++) {
    const prev = rows[i - 1]!;
    const r = rows[i]!;
    if (r.ms < prev.ms)
      throw new InputFileError(
        file,
        r.line,
        `timestamp goes backwards: ${fmtMs(r.ms - first.ms)} after the first row, but line ${prev.line} was at ${fmtMs(prev.ms - first.ms)}; a trace must be in time order`,
        "sort the file by timestamp",
      );
    const gap = (r.ms - prev.ms) * timeScale;
    if (gap > MAX_TRACE_GAP_MS)
      throw new InputFileError(
        file,
        r.line,
        `${fmtMs(gap)} after line ${prev.line}${timeScale === 1 ? "" : ` (time scale ${timeScale})`}; the longest gap a replay waits is ${fmtMs(MAX_TRACE_GAP_MS)}`,
        `check the timestamp unit (ms), or compress time with ${scaleHint}`,
      );
    const span = (r.ms - first.ms) * timeScale;
    if (span > MAX_TRACE_SPAN_MS)
      throw new InputFileError(
        file,
        r.line,
        `the replay would last ${fmtMs(span)} by this row${timeScale === 1 ? "" : ` (time scale ${timeScale})`}; the longest is ${fmtMs(MAX_TRACE_SPAN_MS)}`,
        `cut the trace (maxRequests / --max-requests) or compress time with ${scaleHint}`,
      );
  }
}

function fmtMs(ms: number): string {
  if (ms >= 86_400_000) return `${(ms / 86_400_000).toFixed(1)} days`;
  if (ms >= 3_600_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(3)} s`;
  return `${ms.toFixed(3)} ms`;
}

export interface ShareGptConversation {
  id: string;
  turns: { role: "user" | "assistant"; content: string }[];
}

/** Line of the k-th element of a top-level JSON array, whatever its type (for error messages). */
function lineOfArrayElement(text: string, k: number): number | undefined {
  let depth = 0;
  let idx = -1;
  let inStr = false;
  let inElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inStr) {
      if (c === "\\") i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (depth === 1 && !inElement && !/[\s,\]]/.test(c)) {
      idx++;
      inElement = true;
      if (idx === k) return lineAt(text, i);
    }
    if (c === '"') inStr = true;
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") depth--;
    else if (c === "," && depth === 1) inElement = false;
  }
  return undefined;
}

export function parseShareGpt(text: string, file: string): ShareGptConversation[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new InputFileError(
      file,
      jsonErrorLine(text, err),
      `not valid JSON (${(err as Error).message})`,
    );
  }
  if (!Array.isArray(data))
    throw new InputFileError(file, 1, "expected a JSON list of ShareGPT records");
  if (data.length > MAX_ROWS) throw tooManyRows(file, 1);
  return data.map((rec, k) => {
    const bad = (problem: string) =>
      new InputFileError(file, lineOfArrayElement(text, k), `record ${k}: ${problem}`);
    if (!rec || typeof rec !== "object") throw bad("not an object");
    const conv = (rec as Record<string, unknown>)["conversations"];
    if (!Array.isArray(conv)) throw bad('missing "conversations" list');
    const turns = conv.map((m, j) => {
      const mm = m as Record<string, unknown> | null;
      const from = mm?.["from"];
      const value = mm?.["value"];
      if (typeof value !== "string") throw bad(`message ${j} has no string "value"`);
      if (from === "human" || from === "user") return { role: "user" as const, content: value };
      if (from === "gpt" || from === "assistant" || from === "chatgpt" || from === "bard")
        return { role: "assistant" as const, content: value };
      if (from === "system") return { role: "user" as const, content: value };
      throw bad(`message ${j} has unknown "from": ${JSON.stringify(from)}`);
    });
    return { id: String((rec as Record<string, unknown>)["id"] ?? k), turns };
  });
}

export interface AzureRow {
  line: number;
  /** ms since the epoch (timestamps have no zone; read as UTC). */
  timeMs: number;
  contextTokens: number;
  generatedTokens: number;
}

const AZURE_TS = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/;

export function parseAzureCsv(text: string, file: string): AzureRow[] {
  const lines = text.split("\n").map((l) => l.replace(/\r$/, ""));
  const header = (lines[0] ?? "").split(",").map((h) => h.trim());
  const iT = header.indexOf("TIMESTAMP");
  const iC = header.indexOf("ContextTokens");
  const iG = header.indexOf("GeneratedTokens");
  if (iT < 0 || iC < 0 || iG < 0)
    throw new InputFileError(
      file,
      1,
      "expected header TIMESTAMP,ContextTokens,GeneratedTokens (Azure LLM inference trace)",
    );
  const rows: AzureRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.trim() === "") continue;
    const cells = l.split(",");
    const m = AZURE_TS.exec((cells[iT] ?? "").trim());
    if (!m)
      throw new InputFileError(
        file,
        i + 1,
        `bad TIMESTAMP "${(cells[iT] ?? "").slice(0, 40)}": expected YYYY-MM-DD HH:MM:SS[.ffffff]`,
      );
    const frac = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
    const [mo, d, h, mi, se] = [+m[2]!, +m[3]!, +m[4]!, +m[5]!, +m[6]!];
    // Date.UTC rolls 2024-02-31 over to March: refuse impossible fields instead.
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
      throw new InputFileError(
        file,
        i + 1,
        `bad TIMESTAMP "${cells[iT]!.trim()}": a field is out of range`,
      );
    const timeMs = Date.UTC(+m[1]!, mo - 1, d, h, mi, se) + frac;
    const c = Number(cells[iC]);
    const g = Number(cells[iG]);
    if (!Number.isInteger(c) || c < 0 || c > MAX_ROW_TOKENS)
      throw new InputFileError(
        file,
        i + 1,
        `bad ContextTokens "${(cells[iC] ?? "").slice(0, 40)}": expected an integer 0..${MAX_ROW_TOKENS}`,
      );
    if (!Number.isInteger(g) || g < 0 || g > MAX_ROW_TOKENS)
      throw new InputFileError(
        file,
        i + 1,
        `bad GeneratedTokens "${(cells[iG] ?? "").slice(0, 40)}": expected an integer 0..${MAX_ROW_TOKENS}`,
      );
    if (rows.length >= MAX_ROWS) throw tooManyRows(file, i + 1);
    rows.push({ line: i + 1, timeMs, contextTokens: c, generatedTokens: g });
  }
  if (rows.length === 0) throw new InputFileError(file, undefined, "no rows");
  return rows;
}

export interface ServeGenWindow {
  line: number;
  startS: number;
  rate: number;
  cv: number;
  pattern: string;
  arg1: number;
  arg2: number;
}

export function parseServeGenTrace(text: string, file: string): ServeGenWindow[] {
  const out: ServeGenWindow[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.replace(/\r$/, "");
    if (l.trim() === "") continue;
    const c = l.split(",");
    if (c.length < 6)
      throw new InputFileError(
        file,
        i + 1,
        "expected 6 columns: window_start_s,rate,cv,pattern,arg1,arg2",
      );
    const nums = [c[0], c[1], c[2], c[4], c[5]].map((x) =>
      x?.trim() === "" ? Number.NaN : Number(x),
    );
    if (nums.some((n) => !Number.isFinite(n)))
      throw new InputFileError(file, i + 1, `non-numeric value in "${l.slice(0, 80)}"`);
    if (nums[0]! < 0 || nums[1]! < 0)
      throw new InputFileError(file, i + 1, "window_start_s and rate must not be negative");
    if (nums[1]! > LIMITS.requestRate)
      throw new InputFileError(
        file,
        i + 1,
        `rate ${nums[1]} req/s is above ${LIMITS.requestRate.toLocaleString("en-US")} (LIMITS.requestRate)`,
      );
    const prev = out[out.length - 1];
    if (prev && nums[0]! <= prev.startS)
      throw new InputFileError(
        file,
        i + 1,
        `window_start_s ${nums[0]} is not after line ${prev.line}'s ${prev.startS}; windows must be in increasing time order`,
      );
    if (out.length >= MAX_ROWS) throw tooManyRows(file, i + 1);
    const pattern = c[3]!.trim();
    if (nums[1]! > 0 && pattern !== "Gamma" && pattern !== "Weibull")
      throw new InputFileError(
        file,
        i + 1,
        `unknown pattern "${pattern}" (expected Gamma or Weibull)`,
      );
    out.push({
      line: i + 1,
      startS: nums[0]!,
      rate: nums[1]!,
      cv: nums[2]!,
      pattern,
      arg1: nums[3]!,
      arg2: nums[4]!,
    });
  }
  if (out.length === 0) throw new InputFileError(file, undefined, "no rows");
  return out;
}

export type Pmf = { values: number[]; cumulative: number[] };

/** A Python dict literal of number → probability, e.g. "{12: 0.5, 30: 0.5}". */
export function parsePythonPmf(s: string, where: () => InputFileError): Pmf {
  const t = s.trim();
  if (!t.startsWith("{") || !t.endsWith("}")) throw where();
  const body = t.slice(1, -1).trim();
  const values: number[] = [];
  const cumulative: number[] = [];
  if (body === "") return { values, cumulative };
  let acc = 0;
  for (const part of body.split(",")) {
    const m = /^\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*:\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*$/.exec(part);
    if (!m) throw where();
    acc += Number(m[2]);
    values.push(Number(m[1]));
    cumulative.push(acc);
  }
  return { values, cumulative };
}

export interface ServeGenLengths {
  /** window start (s) → PMFs; sorted by start. */
  windows: { startS: number; input: Pmf; output: Pmf }[];
}

export function parseServeGenDataset(text: string, file: string): ServeGenLengths {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new InputFileError(
      file,
      jsonErrorLine(text, err),
      `not valid JSON (${(err as Error).message})`,
    );
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj))
    throw new InputFileError(file, 1, "expected an object keyed by window start seconds");
  const windows: ServeGenLengths["windows"] = [];
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const line = lineAt(text, text.indexOf(`"${k}"`));
    const vv = v as Record<string, unknown> | null;
    const bad = (what: string) => () =>
      new InputFileError(file, line, `window "${k}": ${what} is not a Python dict literal`);
    if (!vv || typeof vv["input_tokens"] !== "string" || typeof vv["output_tokens"] !== "string")
      throw new InputFileError(
        file,
        line,
        `window "${k}": needs string input_tokens and output_tokens`,
      );
    windows.push({
      startS: Number(k),
      input: parsePythonPmf(vv["input_tokens"], bad("input_tokens")),
      output: parsePythonPmf(vv["output_tokens"], bad("output_tokens")),
    });
  }
  windows.sort((a, b) => a.startS - b.startS);
  return { windows };
}
