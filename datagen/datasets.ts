/**
 * Strict parsers for workload files. Every problem is an InputFileError naming file and line.
 * Pure: text in, rows out (the caller reads the file).
 */
import { InputFileError } from "../lib/errors.ts";

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
    const num = (key: string, int: boolean) => {
      const v = o[key];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (int && !Number.isInteger(v)))
        throw new InputFileError(
          file,
          line,
          `"${key}" must be a non-negative ${int ? "integer" : "number"}`,
        );
      return v;
    };
    row.timestamp = num("timestamp", false);
    row.inputLength = num("input_length", true);
    row.outputLength = num("output_length", true);
    row.delay = num("delay", false);
    if (o["session_id"] !== undefined) row.sessionId = String(o["session_id"]);
    if (o["hash_ids"] !== undefined) {
      const h = o["hash_ids"];
      if (!Array.isArray(h) || !h.every(isInt))
        throw new InputFileError(file, line, '"hash_ids" must be a list of non-negative integers');
      row.hashIds = h;
    }
    if (row.text === undefined && row.inputLength === undefined)
      throw new InputFileError(
        file,
        line,
        'row has neither "text" nor "input_length"',
        'use {"text": "..."} or {"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]}',
      );
    rows.push(row);
  }
  if (rows.length === 0) throw new InputFileError(file, undefined, "no rows");
  return rows;
}

export interface ShareGptConversation {
  id: string;
  turns: { role: "user" | "assistant"; content: string }[];
}

/** Line of the k-th element of a top-level JSON array (for error messages). */
function lineOfArrayElement(text: string, k: number): number | undefined {
  let depth = 0;
  let idx = -1;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      if (c === "\\") i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === "[" || c === "{") {
      if (depth === 1) {
        idx++;
        if (idx === k) return lineAt(text, i);
      }
      depth++;
    } else if (c === "]" || c === "}") depth--;
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
    if (!m) throw new InputFileError(file, i + 1, `bad TIMESTAMP "${cells[iT] ?? ""}"`);
    const frac = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
    const timeMs = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) + frac;
    const c = Number(cells[iC]);
    const g = Number(cells[iG]);
    if (!Number.isInteger(c) || c < 0)
      throw new InputFileError(file, i + 1, `bad ContextTokens "${cells[iC] ?? ""}"`);
    if (!Number.isInteger(g) || g < 0)
      throw new InputFileError(file, i + 1, `bad GeneratedTokens "${cells[iG] ?? ""}"`);
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
    const nums = [c[0], c[1], c[2], c[4], c[5]].map((x) => Number(x));
    if (nums.some((n) => !Number.isFinite(n)))
      throw new InputFileError(file, i + 1, `non-numeric value in "${l}"`);
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
