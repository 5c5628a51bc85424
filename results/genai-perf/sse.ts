/**
 * Turning raw HTTP chunks into GenAI-Perf "responses": SSE events are re-joined across chunk
 * boundaries and split when one chunk holds several; comment / `event:` / `id:` / `retry:` lines
 * are skipped; responses whose extracted text is empty are dropped with their timestamps.
 */

export interface ServerUsage {
  promptTokens?: number;
  completionTokens?: number;
  totalTokens?: number;
}

export interface ParsedResponse {
  /** Timestamp of the chunk that completed this event (ns, same clock as the input). */
  timestamp: bigint;
  /** Extracted text; empty texts are kept here and dropped by `nonEmptyResponses`. */
  text: string;
  /** The event was `data: [DONE]`. */
  done: boolean;
}

export interface ParsedStream {
  responses: ParsedResponse[];
  usage?: ServerUsage;
  /** Error objects the server sent inside the stream or body (OpenAI `{"error": ...}`). */
  errors: string[];
}

function usageOf(obj: Record<string, unknown>): ServerUsage | undefined {
  const u = obj["usage"];
  if (!u || typeof u !== "object") return undefined;
  const r = u as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  return {
    promptTokens: num(r["prompt_tokens"]),
    completionTokens: num(r["completion_tokens"]),
    totalTokens: num(r["total_tokens"]),
  };
}

/** Text of one parsed JSON response: chat delta, chat message, or completions text. */
export function extractText(obj: unknown): string {
  if (!obj || typeof obj !== "object") return "";
  const choices = (obj as Record<string, unknown>)["choices"];
  if (!Array.isArray(choices) || choices.length === 0) return ""; // usage-only chunk
  const c0 = choices[0] as Record<string, unknown> | undefined;
  if (!c0 || typeof c0 !== "object") return "";
  const delta = c0["delta"] as Record<string, unknown> | undefined;
  if (delta && typeof delta === "object") {
    const content = delta["content"];
    return typeof content === "string" ? content : "";
  }
  const message = c0["message"] as Record<string, unknown> | undefined;
  if (message && typeof message === "object") {
    const content = message["content"];
    return typeof content === "string" ? content : "";
  }
  const text = c0["text"];
  return typeof text === "string" ? text : "";
}

function errorOf(obj: unknown): string | undefined {
  if (!obj || typeof obj !== "object") return undefined;
  const e = (obj as Record<string, unknown>)["error"];
  if (e === undefined || e === null) return undefined;
  if (typeof e === "string") return e;
  const m = (e as Record<string, unknown>)["message"];
  return typeof m === "string" ? m : JSON.stringify(e);
}

/** The data of one SSE event block (lines joined with "\n"), or undefined when it has none. */
function eventData(block: string): string | undefined {
  let data: string | undefined;
  for (const rawLine of block.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== "data") continue; // event:, id:, retry:
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data;
}

function looksLikeSse(chunks: readonly string[]): boolean {
  let head = "";
  for (const c of chunks) {
    head += c;
    if (head.trimStart().length >= 8) break;
  }
  const t = head.trimStart();
  return /^(data|event|id|retry)\s*:/.test(t) || t.startsWith(":");
}

/**
 * Parses one request's raw responses. Streaming (SSE) bodies are re-joined and split into events;
 * a non-SSE body is one response, stamped with its last chunk's timestamp.
 */
export function parseResponses(
  timestamps: readonly bigint[],
  chunks: readonly string[],
): ParsedStream {
  const out: ParsedStream = { responses: [], errors: [] };
  if (chunks.length === 0) return out;
  const handle = (payload: string, ts: bigint) => {
    if (payload.trim() === "[DONE]") {
      out.responses.push({ timestamp: ts, text: "", done: true });
      return;
    }
    let obj: unknown;
    try {
      obj = JSON.parse(payload);
    } catch {
      out.responses.push({ timestamp: ts, text: "", done: false });
      return;
    }
    const err = errorOf(obj);
    if (err !== undefined) out.errors.push(err);
    const usage =
      obj && typeof obj === "object" ? usageOf(obj as Record<string, unknown>) : undefined;
    if (usage) out.usage = usage;
    out.responses.push({ timestamp: ts, text: extractText(obj), done: false });
  };
  if (!looksLikeSse(chunks)) {
    handle(chunks.join(""), timestamps[timestamps.length - 1]!);
    return out;
  }
  let buf = "";
  for (let i = 0; i < chunks.length; i++) {
    buf = (buf + chunks[i]!).replace(/\r\n/g, "\n");
    const ts = timestamps[i]!;
    let end = buf.indexOf("\n\n");
    while (end !== -1) {
      const data = eventData(buf.slice(0, end));
      buf = buf.slice(end + 2);
      if (data !== undefined) handle(data, ts);
      end = buf.indexOf("\n\n");
    }
  }
  if (buf.trim() !== "") {
    const data = eventData(buf);
    if (data !== undefined) handle(data, timestamps[timestamps.length - 1]!);
  }
  return out;
}

export function nonEmptyResponses(parsed: ParsedStream): ParsedResponse[] {
  return parsed.responses.filter((r) => r.text !== "");
}

/**
 * Re-cuts raw streamed chunks at SSE event boundaries for the raw export: one response per event
 * (so `data: [DONE]` is always its own response, as in perf_analyzer's records), each stamped
 * with the arrival time of the chunk that completed it. Metric math is unchanged by this.
 */
export function splitSseEvents<T>(
  timestamps: readonly T[],
  chunks: readonly string[],
): { timestamps: T[]; responses: string[] } {
  const outTs: T[] = [];
  const out: string[] = [];
  let buf = "";
  for (let i = 0; i < chunks.length; i++) {
    buf += chunks[i]!;
    for (;;) {
      const lf = buf.indexOf("\n\n");
      const crlf = buf.indexOf("\r\n\r\n");
      let end = -1;
      let len = 0;
      if (lf !== -1 && (crlf === -1 || lf < crlf)) {
        end = lf;
        len = 2;
      } else if (crlf !== -1) {
        end = crlf;
        len = 4;
      }
      if (end === -1) break;
      out.push(buf.slice(0, end + len));
      outTs.push(timestamps[i]!);
      buf = buf.slice(end + len);
    }
  }
  if (buf !== "") {
    out.push(buf);
    outTs.push(timestamps[timestamps.length - 1]!);
  }
  return { timestamps: outTs, responses: out };
}

/**
 * True when one raw response is a single SSE event whose JSON has an empty `choices` list (the
 * `stream_options.include_usage` chunk). genai-perf's parser indexes `choices[0]` and crashes on
 * it (genai-perf 0.0.16), and perf_analyzer never asks for it, so the raw export leaves it out;
 * it carries no text, so no metric changes, and its counts stay in the per-request records.
 */
export function isUsageOnlyEvent(response: string): boolean {
  if (response.indexOf('"choices"') === -1) return false;
  const body = response.replace(/(\r?\n)+$/, "");
  if (body.includes("\n\n") || body.includes("\r\n\r\n")) return false;
  const data = eventData(body.replace(/\r\n/g, "\n"));
  if (data === undefined) return false;
  try {
    const obj = JSON.parse(data) as Record<string, unknown>;
    return Array.isArray(obj["choices"]) && obj["choices"].length === 0;
  } catch {
    return false;
  }
}
