/**
 * Workloads: what to send (prompts, output lengths, sessions, recorded arrival times), built from
 * a DatasetPlan. Prompt text is synthesised from single-token words so lengths are exact under the
 * shipped tokenizers; long trace prompts are built lazily at send time.
 */
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { InputFileError } from "../lib/errors.ts";
import { createRng, type Rng } from "../lib/random.ts";
import type { DatasetPlan } from "../stacks/plan-types.ts";
import {
  checkTraceTimes,
  type InputFileRow,
  MAX_ROWS,
  type Pmf,
  parseAzureCsv,
  parseInputFileJsonl,
  parseServeGenDataset,
  parseServeGenTrace,
  parseShareGpt,
} from "./datasets.ts";
import { PromptFactory } from "./text.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface WorkItem {
  messages: () => ChatMessage[];
  /** Exact prompt tokens when known by construction (saves re-tokenizing long prompts). */
  islTokens?: number;
  maxTokens?: number;
  /** Trace arrival, ms after the first request (already time-scaled). */
  atMs?: number;
  /** Line of the dataset file the item comes from (for messages). */
  line?: number;
}

export interface SessionTurn {
  user: string;
  userTokens?: number;
  maxTokens?: number;
  /** Wait after the previous turn's answer before this turn, ms. */
  delayMs?: number;
}

export interface SessionSpec {
  id: string;
  system?: string;
  turns: SessionTurn[];
}

export interface Workload {
  kind: DatasetPlan["kind"];
  /** Cycled pool (trace=false) or the trace, in arrival order (trace=true). */
  items: WorkItem[];
  trace: boolean;
  /** Multi-turn sessions (multi-round QA, input files with session_id). */
  sessions?: SessionSpec[];
  description: string;
}

export interface WorkloadOptions {
  /** Model or tokenizer name for prompt synthesis and counts. */
  tokenizer: string;
  seed: number;
  outputTokensMean?: number;
  outputTokensStddev: number;
  /**
   * What names the files and the time scale, for messages: config paths for a stack
   * (`workload.dataset.path`), flags for `inferbench profile` (`--input-file`).
   */
  names?: DatasetNames;
}

export interface DatasetNames {
  path: string;
  datasetPath: string;
  timeScale: string;
}

/** Stacks (cli/plan-stack.ts) and `profile` (its flag check) pass their own names. */
const DEFAULT_NAMES: DatasetNames = {
  path: "--input-file / workload.dataset.path",
  datasetPath: "--servegen-dataset / workload.dataset.datasetPath",
  timeScale: "--time-scale (workload.dataset.timeScale in a stack)",
};

export const STACK_DATASET_NAMES: DatasetNames = {
  path: "workload.dataset.path",
  datasetPath: "workload.dataset.datasetPath",
  timeScale: "workload.dataset.timeScale",
};

/** Dataset files past this size are refused before reading (they are held in memory). */
export const MAX_DATASET_FILE_BYTES = 256 * 1024 * 1024;

function outputLength(rng: Rng, o: WorkloadOptions): number | undefined {
  if (o.outputTokensMean === undefined) return undefined;
  return Math.trunc(Math.max(1, rng.gauss(o.outputTokensMean, o.outputTokensStddev)));
}

const user = (content: string): ChatMessage[] => [{ role: "user", content }];

/** Reads a dataset file; every failure names the file and what named it (config path or flag). */
export function readDatasetText(path: string, namedBy: string): string {
  const fail = (problem: string, hint: string) =>
    new InputFileError(path, undefined, `${problem} (the file named by ${namedBy})`, hint);
  checkDatasetFile(path, namedBy);
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(`cannot be read (${code ?? (err as Error).message})`, "check its permissions");
  }
}

/** A dataset file exists, is a file, is readable and is not too large (no content read). */
export function checkDatasetFile(path: string, namedBy: string): void {
  const fail = (problem: string, hint: string) =>
    new InputFileError(path, undefined, `${problem} (the file named by ${namedBy})`, hint);
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory())
      throw fail("is a directory, not a dataset file", "name the file inside it");
    size = st.size;
  } catch (err) {
    if (err instanceof InputFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(
      code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? (err as Error).message})`,
      `paths are relative to the directory inferbench runs in (${process.cwd()})`,
    );
  }
  if (size > MAX_DATASET_FILE_BYTES)
    throw fail(
      `is ${size.toLocaleString("en-US")} bytes; the most is ${MAX_DATASET_FILE_BYTES.toLocaleString("en-US")}`,
      "cut the file",
    );
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(`cannot be read (${code ?? (err as Error).message})`, "check its permissions");
  }
}

export function buildWorkload(plan: DatasetPlan, o: WorkloadOptions): Workload {
  const names = o.names ?? DEFAULT_NAMES;
  const readText = (path: string) =>
    readDatasetText(
      path,
      "datasetPath" in plan && path === plan.datasetPath ? names.datasetPath : names.path,
    );
  const rng = createRng(o.seed);
  const pf = new PromptFactory(o.tokenizer);
  switch (plan.kind) {
    case "synthetic": {
      const items: WorkItem[] = [];
      for (let i = 0; i < plan.numDatasetEntries; i++) {
        const n = Math.max(0, Math.trunc(rng.gauss(plan.inputTokensMean, plan.inputTokensStddev)));
        const text = pf.text(rng, n);
        items.push({ messages: () => user(text), islTokens: n, maxTokens: outputLength(rng, o) });
      }
      return { kind: plan.kind, items, trace: false, description: `synthetic ${items.length}` };
    }
    case "input-file":
    case "mooncake":
      return fromInputRows(
        plan,
        parseInputFileJsonl(readText(plan.path), plan.path),
        pf,
        rng,
        o,
        names.timeScale,
      );
    case "sharegpt": {
      const convs = parseShareGpt(readText(plan.path), plan.path).slice(0, plan.maxConversations);
      // Conversation pieces: the history up to each assistant answer (Ray Serve prefix study).
      const pieces: WorkItem[] = [];
      for (const c of convs) {
        for (let j = 1; j < c.turns.length; j++) {
          if (c.turns[j]!.role !== "assistant" || c.turns[j - 1]!.role !== "user") continue;
          const msgs = c.turns.slice(0, j).map((t) => ({ role: t.role, content: t.content }));
          const answer = pf.tokenizer.count(c.turns[j]!.content);
          pieces.push({
            messages: () => msgs,
            maxTokens: outputLength(rng, o) ?? Math.max(1, answer),
          });
        }
      }
      if (pieces.length === 0)
        throw new InputFileError(plan.path, undefined, "no user→assistant pieces found");
      const items: WorkItem[] = [];
      const order = rng.shuffle(pieces.map((_, i) => i));
      for (let i = 0; i < plan.numPrompts; i++) {
        // Without replacement while pieces last, then reshuffled rounds.
        if (i > 0 && i % order.length === 0) rng.shuffle(order);
        items.push(pieces[order[i % order.length]!]!);
      }
      return {
        kind: plan.kind,
        items,
        trace: false,
        description: `sharegpt ${convs.length} conversations, ${pieces.length} pieces, ${items.length} prompts`,
      };
    }
    case "multi-round-qa": {
      const system = pf.text(rng, plan.systemPromptTokens);
      const sessions: SessionSpec[] = [];
      for (let u = 0; u < plan.users; u++) {
        const turns: SessionTurn[] = [];
        for (let r = 0; r < plan.rounds; r++) {
          turns.push({
            user: pf.text(rng, plan.questionTokens),
            userTokens: plan.questionTokens,
            maxTokens: plan.answerTokens,
          });
        }
        sessions.push({ id: `user-${u}`, system, turns });
      }
      return {
        kind: plan.kind,
        items: [],
        trace: false,
        sessions,
        description: `multi-round QA ${plan.users} users × ${plan.rounds} rounds`,
      };
    }
    case "shared-prefix": {
      const items: WorkItem[] = [];
      for (let g = 0; g < plan.groups; g++) {
        const sys = pf.text(rng, plan.systemPromptTokens);
        for (let p = 0; p < plan.promptsPerGroup; p++) {
          const q = pf.text(rng, plan.questionTokens);
          const msgs: ChatMessage[] = [
            { role: "system", content: sys },
            { role: "user", content: q },
          ];
          items.push({
            messages: () => msgs,
            islTokens: plan.systemPromptTokens + plan.questionTokens,
            maxTokens: outputLength(rng, o),
          });
        }
      }
      rng.shuffle(items);
      return {
        kind: plan.kind,
        items,
        trace: false,
        description: `shared prefix ${plan.groups} groups × ${plan.promptsPerGroup}`,
      };
    }
    case "azure-trace": {
      let rows = parseAzureCsv(readText(plan.path), plan.path);
      if (plan.maxRequests !== undefined) rows = rows.slice(0, plan.maxRequests);
      checkTraceTimes(
        rows.map((r) => ({ line: r.line, ms: r.timeMs })),
        plan.path,
        plan.timeScale,
        names.timeScale,
      );
      const t0 = rows[0]!.timeMs;
      const items = rows.map((r) => {
        const seed = r.line;
        return {
          messages: () => user(pf.text(createRng(o.seed ^ (seed * 7919)), r.contextTokens)),
          islTokens: r.contextTokens,
          maxTokens: Math.max(1, r.generatedTokens),
          atMs: (r.timeMs - t0) * plan.timeScale,
          line: r.line,
        };
      });
      return { kind: plan.kind, items, trace: true, description: `azure trace ${items.length}` };
    }
    case "servegen":
      return serveGen(plan, pf, rng, o, readText, names.timeScale);
  }
}

function fromInputRows(
  plan: Extract<DatasetPlan, { kind: "input-file" | "mooncake" }>,
  allRows: InputFileRow[],
  pf: PromptFactory,
  rng: Rng,
  o: WorkloadOptions,
  timeScaleName: string,
): Workload {
  const maxRequests = "maxRequests" in plan ? plan.maxRequests : undefined;
  const timeScale = "timeScale" in plan ? plan.timeScale : 1;
  const rows = maxRequests !== undefined ? allRows.slice(0, maxRequests) : allRows;
  const promptOf = (r: InputFileRow): { text: () => string; tokens?: number } => {
    if (r.text !== undefined) {
      const t = r.text;
      return { text: () => t };
    }
    const n = r.inputLength!;
    if (r.hashIds && r.hashIds.length > 0) {
      const ids = r.hashIds;
      return { text: () => pf.fromHashIds(ids, n), tokens: n };
    }
    const seed = o.seed ^ (r.line * 7919);
    return { text: () => pf.text(createRng(seed), n), tokens: n };
  };
  const maxOf = (r: InputFileRow) =>
    r.outputLength !== undefined ? Math.max(1, r.outputLength) : outputLength(rng, o);
  if (rows.some((r) => r.sessionId !== undefined)) {
    const byId = new Map<string, SessionSpec>();
    for (const r of rows) {
      const id = r.sessionId ?? `row-${r.line}`;
      let s = byId.get(id);
      if (!s) {
        s = { id, turns: [] };
        byId.set(id, s);
      }
      const p = promptOf(r);
      s.turns.push({ user: p.text(), userTokens: p.tokens, maxTokens: maxOf(r), delayMs: r.delay });
    }
    return {
      kind: plan.kind,
      items: [],
      trace: false,
      sessions: [...byId.values()],
      description: `${plan.path}: ${byId.size} sessions`,
    };
  }
  const trace = rows.every((r) => r.timestamp !== undefined);
  // Checked in file order: an out-of-order trace is the file's fault, not the generator's lag.
  if (trace)
    checkTraceTimes(
      rows.map((r) => ({ line: r.line, ms: r.timestamp! })),
      plan.path,
      timeScale,
      timeScaleName,
    );
  const t0 = trace ? rows[0]!.timestamp! : 0;
  const items = rows.map((r) => {
    const p = promptOf(r);
    const item: WorkItem = {
      messages: () => user(p.text()),
      islTokens: p.tokens,
      maxTokens: maxOf(r),
      line: r.line,
    };
    if (trace) item.atMs = (r.timestamp! - t0) * timeScale;
    return item;
  });
  return { kind: plan.kind, items, trace, description: `${plan.path}: ${items.length} rows` };
}

function samplePmf(rng: Rng, pmf: Pmf): number | undefined {
  const total = pmf.cumulative[pmf.cumulative.length - 1];
  if (total === undefined || total <= 0) return undefined;
  const u = rng.next() * total;
  let lo = 0;
  let hi = pmf.cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pmf.cumulative[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return pmf.values[lo];
}

/** Gap sampler with the window's distribution family and shape, rescaled to mean 1/rate. */
export function serveGenGap(
  rng: Rng,
  w: { rate: number; cv: number; pattern: string; arg1: number },
): number {
  if (w.pattern === "Gamma" && w.arg1 > 0) return rng.gamma(w.arg1, 1 / (w.rate * w.arg1));
  if (w.pattern === "Weibull" && w.arg1 > 0) {
    const meanUnit = gammaFn(1 + 1 / w.arg1);
    return rng.weibull(w.arg1, 1 / (w.rate * meanUnit));
  }
  return rng.exponential(w.rate);
}

/** Lanczos approximation of Γ(x), x > 0. */
export function gammaFn(x: number): number {
  const g = 7;
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.PI / (Math.sin(Math.PI * x) * gammaFn(1 - x));
  const xx = x - 1;
  let a = c[0]!;
  const t = xx + g + 0.5;
  for (let i = 1; i < g + 2; i++) a += c[i]! / (xx + i);
  return Math.sqrt(2 * Math.PI) * t ** (xx + 0.5) * Math.exp(-t) * a;
}

function serveGen(
  plan: Extract<DatasetPlan, { kind: "servegen" }>,
  pf: PromptFactory,
  rng: Rng,
  o: WorkloadOptions,
  readText: (path: string) => string,
  timeScaleName: string,
): Workload {
  const windows = parseServeGenTrace(readText(plan.path), plan.path);
  const lengths = plan.datasetPath
    ? parseServeGenDataset(readText(plan.datasetPath), plan.datasetPath)
    : undefined;
  const windowLen = windows.length > 1 ? windows[1]!.startS - windows[0]!.startS : 600;
  const cap = plan.maxRequests ?? Number.POSITIVE_INFINITY;
  // Arrivals are generated up front: refuse a trace that would generate millions of them.
  let expected = 0;
  for (const w of windows) {
    expected += w.rate * windowLen;
    if (Math.min(expected, cap) > MAX_ROWS)
      throw new InputFileError(
        plan.path,
        w.line,
        `the windows up to here expect ≈${Math.round(expected).toLocaleString("en-US")} arrivals (rate × ${windowLen} s windows); the most is ${MAX_ROWS.toLocaleString("en-US")} (LIMITS.datasetEntries)`,
        "cap them with maxRequests / --max-requests",
      );
  }
  const arrivals: number[] = [];
  const arrivalLine: number[] = [];
  for (const w of windows) {
    if (w.rate <= 0) continue;
    let t = w.startS;
    for (;;) {
      t += serveGenGap(rng, w);
      if (t >= w.startS + windowLen || arrivals.length >= cap) break;
      arrivals.push(t);
      arrivalLine.push(w.line);
    }
    if (arrivals.length >= cap) break;
  }
  if (arrivals.length === 0) throw new InputFileError(plan.path, undefined, "no active windows");
  checkTraceTimes(
    arrivals.map((t, i) => ({ line: arrivalLine[i]!, ms: t * 1000 })),
    plan.path,
    plan.timeScale,
    timeScaleName,
  );
  const t0 = arrivals[0]!;
  const pmfsAt = (t: number) => {
    if (!lengths) return undefined;
    let best: (typeof lengths.windows)[number] | undefined;
    for (const w of lengths.windows) {
      if (w.startS > t) break;
      if (w.input.values.length > 0) best = w;
    }
    return best ?? lengths.windows.find((w) => w.input.values.length > 0);
  };
  const items: WorkItem[] = arrivals.map((t, i) => {
    const pm = pmfsAt(t);
    const isl = Math.max(1, Math.round((pm && samplePmf(rng, pm.input)) ?? 550));
    const osl = (pm && samplePmf(rng, pm.output)) ?? outputLength(rng, o);
    const seed = o.seed ^ (i * 7919);
    return {
      messages: () => user(pf.text(createRng(seed), isl)),
      islTokens: isl,
      maxTokens: osl === undefined ? undefined : Math.max(1, Math.round(osl)),
      atMs: (t - t0) * 1000 * plan.timeScale,
    };
  });
  return { kind: plan.kind, items, trace: true, description: `servegen ${items.length} arrivals` };
}
