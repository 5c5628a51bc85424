/**
 * The longest request a workload sends: prompt tokens plus the max_tokens it asks for, measured
 * on the very items buildWorkload produces (so it cannot drift from what is sent). The plan
 * refuses a maxModelLen below it (vLLM answers such requests with HTTP 400).
 */
import { getTokenizer } from "../lib/tokenizer.ts";
import type { RequestExtent } from "../stacks/plan.ts";
import type { DatasetPlan } from "../stacks/plan-types.ts";
import { buildWorkload, type DatasetNames, type Workload } from "./workload.ts";

export interface ExtentOptions {
  /** Tokenizer (model name) the workload is built with: the first driven model, as the runner. */
  tokenizer: string;
  /** Every seed the run builds the workload with (one per load point and repeat). */
  seeds: readonly number[];
  outputTokensMean?: number | undefined;
  outputTokensStddev: number;
  names?: DatasetNames;
}

/** Prompt tokens generated across seeds before the rest are left unmeasured (keeps plan fast). */
export const EXTENT_TOKEN_BUDGET = 20_000_000;

/** Builds the workload for each seed (validating its files on the way) and returns the longest. */
export function workloadExtent(dataset: DatasetPlan, o: ExtentOptions): RequestExtent {
  let best: (RequestExtent & { total: number }) | undefined;
  let spent = 0;
  let measured = 0;
  const where = (line: number | undefined, what: string) =>
    "path" in dataset && line !== undefined ? `${dataset.path}:${line}` : what;
  for (const seed of o.seeds.length > 0 ? o.seeds : [0]) {
    if (measured > 0 && spent > EXTENT_TOKEN_BUDGET) break;
    const w = buildWorkload(dataset, {
      tokenizer: o.tokenizer,
      seed,
      outputTokensMean: o.outputTokensMean,
      outputTokensStddev: o.outputTokensStddev,
      ...(o.names ? { names: o.names } : {}),
    });
    measured++;
    for (const r of requests(w, o.tokenizer)) {
      spent += r.prompt;
      const total = r.prompt + (r.output ?? 1);
      if (best === undefined || total > best.total)
        best = {
          total,
          promptTokens: r.prompt,
          outputTokens: r.output,
          source: where(r.line, `${describe(dataset, o)}, seed ${seed}`),
        };
    }
  }
  const seeds = o.seeds.length;
  const result: RequestExtent = best
    ? { promptTokens: best.promptTokens, outputTokens: best.outputTokens, source: best.source }
    : { promptTokens: 0, source: describe(dataset, o) };
  if (seeds > measured) result.source += `; measured on ${measured} of ${seeds} load-point seeds`;
  return result;
}

function describe(d: DatasetPlan, o: ExtentOptions): string {
  const out =
    o.outputTokensMean === undefined
      ? ""
      : `, workload.outputTokensMean ${o.outputTokensMean} ± ${o.outputTokensStddev}`;
  switch (d.kind) {
    case "synthetic":
      return `the longest synthetic prompt drawn from workload.dataset.inputTokensMean ${d.inputTokensMean} ± ${d.inputTokensStddev}${out}`;
    case "shared-prefix":
      return `workload.dataset.systemPromptTokens ${d.systemPromptTokens} + questionTokens ${d.questionTokens}${out}`;
    case "multi-round-qa":
      return `the last round of workload.dataset (system prompt, ${d.rounds} questions and earlier answers)`;
    default:
      return `${d.kind} ${d.path}`;
  }
}

interface Req {
  prompt: number;
  output: number | undefined;
  line?: number | undefined;
}

/** Every request of a workload with its prompt length (multi-turn: with the history it carries). */
function* requests(w: Workload, tokenizer: string): Generator<Req> {
  let tok: ReturnType<typeof getTokenizer> | undefined;
  const count = (text: string) => {
    tok ??= getTokenizer(tokenizer);
    return tok.count(text);
  };
  for (const item of w.items) {
    const prompt = item.islTokens ?? item.messages().reduce((n, m) => n + count(m.content), 0);
    yield { prompt, output: item.maxTokens, line: item.line };
  }
  for (const s of w.sessions ?? []) {
    // The history grows by each question and each answer (at most max_tokens long).
    let history = s.system ? count(s.system) : 0;
    for (const t of s.turns) {
      const user = t.userTokens ?? count(t.user);
      yield { prompt: history + user, output: t.maxTokens };
      history += user + (t.maxTokens ?? 0);
    }
  }
}
