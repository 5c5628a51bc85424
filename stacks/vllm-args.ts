/**
 * `models[].extraArgs` read the way `vllm serve` reads them, so a flag the plan sets itself cannot
 * slip through under another spelling. vLLM parses with FlexibleArgumentParser
 * (vllm/utils/argparse_utils.py), an argparse.ArgumentParser that
 *   - turns `_` into `-` in `--names` (up to the first `.`: `--max_model_len` = `--max-model-len`),
 *   - reads `--name.key value` as a JSON field of `--name`,
 *   - loads more flags from `--config file.yaml`,
 * and, being argparse with allow_abbrev, takes `--name=value`, unambiguous prefixes (`--max-model`,
 * `-t` for `-tp`) and a value glued to a one-letter flag (`-qawq`). Short aliases are those of
 * vllm/engine/arg_utils.py: -tp, -pp, -dcp, -dp, -dpn, -dpr, -dpl, -dpa, -dpp, -dpb, -q, -O.
 * An element may hold several words ("--port 9000"): it is split like a shell would.
 */

export interface OwnedFlag {
  /** Canonical long name. */
  long: string;
  /** vLLM's short aliases of it. */
  short?: readonly string[];
  /** What to set instead. */
  instead: string;
}

/** Flags the plan writes itself (or that would undo what it checks). */
export const PLAN_OWNED_FLAGS: readonly OwnedFlag[] = [
  { long: "--port", instead: "engine.basePort" },
  { long: "--host", instead: "nothing: engines listen where the router can reach them" },
  { long: "--uds", instead: "nothing: the router reaches engines over TCP (engine.basePort)" },
  { long: "--served-model-name", instead: "models[].name" },
  { long: "--model", instead: "models[].hfPath" },
  { long: "--tensor-parallel-size", short: ["-tp"], instead: "models[].gpusPerReplica" },
  {
    long: "--pipeline-parallel-size",
    short: ["-pp"],
    instead: "models[].gpusPerReplica (the plan places GPUs for tensor parallelism only)",
  },
  { long: "--data-parallel-size", short: ["-dp"], instead: "models[].replicas" },
  { long: "--data-parallel-size-local", short: ["-dpl"], instead: "models[].replicas" },
  { long: "--max-model-len", instead: "models[].maxModelLen" },
  { long: "--max-num-seqs", instead: "engine.maxNumSeqs" },
  { long: "--max-num-batched-tokens", instead: "engine.maxNumBatchedTokens" },
  { long: "--quantization", short: ["-q"], instead: "models[].quantization" },
  { long: "--gpu-memory-utilization", instead: "engine.gpuMemoryUtilization" },
  { long: "--kv-cache-memory-bytes", instead: "engine.gpuMemoryUtilization" },
  { long: "--enable-prefix-caching", instead: "engine.prefixCaching" },
  { long: "--no-enable-prefix-caching", instead: "engine.prefixCaching" },
  {
    long: "--config",
    instead: "the flags themselves in extraArgs (a --config file could set any flag unchecked)",
  },
  { long: "--hf-token", instead: "hfToken (a secret never goes on a command line)" },
  {
    long: "--api-key",
    instead:
      "nothing: the router calls engines without a key (and a secret never goes on a command line)",
  },
];

export class ShellWordsError extends Error {}

/**
 * POSIX shell word splitting without expansion: blanks separate words; '…' is literal; "…" keeps
 * blanks and takes \" \\ \$ \` escapes; a backslash outside quotes escapes the next character.
 */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) throw new ShellWordsError("unterminated ' quote");
      cur += text.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === "\\" && j + 1 < text.length && '"\\$`'.includes(text[j + 1]!)) j++;
        cur += text[j];
      }
      if (j >= text.length) throw new ShellWordsError('unterminated " quote');
      i = j;
      inWord = true;
    } else if (c === "\\") {
      if (i + 1 >= text.length) throw new ShellWordsError("a trailing backslash escapes nothing");
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

export interface ExtraArgProblem {
  /** Index into extraArgs. */
  index: number;
  message: string;
}

const SHORTS = PLAN_OWNED_FLAGS.flatMap((f) => (f.short ?? []).map((s) => ({ s, f })));

/**
 * The flag a word sets, as argparse would resolve it, when that flag is plan-owned. Only the flag
 * name is quoted back: values (which may be secrets) never appear in the message.
 */
export function ownedFlagIn(word: string): string | undefined {
  if (word.startsWith("--")) {
    // `--name=value` and `--name.key value` both name `--name`; `_` reads as `-`.
    const name = `--${word.slice(2).split("=", 1)[0]!.split(".", 1)[0]!.replace(/_/g, "-")}`;
    if (name === "--") return undefined;
    const exact = PLAN_OWNED_FLAGS.find((f) => f.long === name);
    const written = word.split("=", 1)[0]!;
    const spelled = name === written ? "" : ` (written "${written}")`;
    if (exact) return `sets ${exact.long}${spelled}, which the plan controls; use ${exact.instead}`;
    const prefixOf = PLAN_OWNED_FLAGS.find((f) => f.long.startsWith(name));
    if (prefixOf)
      return `"${name}" abbreviates ${prefixOf.long} (vLLM's argparse takes unambiguous prefixes), which the plan controls; use ${prefixOf.instead}`;
    return undefined;
  }
  // A negative number is a value, not a flag.
  if (!word.startsWith("-") || word.length < 2 || /^-[\d.]/.test(word)) return undefined;
  const name = word.split("=", 1)[0]!;
  const exact = SHORTS.find((x) => x.s === name);
  if (exact)
    return `sets ${exact.f.long} (as its alias ${exact.s}), which the plan controls; use ${exact.f.instead}`;
  const abbrev = SHORTS.find((x) => x.s.startsWith(name));
  if (abbrev)
    return `"${name}" abbreviates ${abbrev.s} = ${abbrev.f.long} (vLLM's argparse takes unambiguous prefixes), which the plan controls; use ${abbrev.f.instead}`;
  // argparse reads `-qawq` as `-q awq` for one-letter flags.
  const glued = SHORTS.find((x) => x.s.length === 2 && name.startsWith(x.s));
  if (glued)
    return `sets ${glued.f.long} ("${glued.s}" with its value attached), which the plan controls; use ${glued.f.instead}`;
  return undefined;
}

/** Splits every element into words and reports plan-owned flags; returns the words to pass on. */
export function checkExtraArgs(extraArgs: readonly string[]): {
  words: string[];
  problems: ExtraArgProblem[];
} {
  const words: string[] = [];
  const problems: ExtraArgProblem[] = [];
  let positional = false;
  extraArgs.forEach((element, index) => {
    let split: string[];
    try {
      split = shellWords(element);
    } catch (err) {
      problems.push({
        index,
        message: `${(err as Error).message}; extraArgs elements are split into words like a shell does`,
      });
      return;
    }
    for (const w of split) {
      words.push(w);
      // After `--` argparse reads everything as positional values: no flag can be set there.
      if (w === "--") positional = true;
      if (positional) continue;
      const owned = ownedFlagIn(w);
      if (owned) problems.push({ index, message: owned });
    }
  });
  return { words, problems };
}
