/**
 * Every GenAI-Perf flag that `inferbench profile` claims (loadgen/profile-options.ts's schema,
 * less inferbench's own extensions) exists in `genai-perf profile --help` of the pinned
 * genai-perf, under the same name, with the same short alias and the same arity (takes a value or
 * not), and where both sides have a plain default, the same default. Known differences are
 * listed with their reason, and the test fails when one goes away, so the list cannot go stale.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Command, type Option } from "commander";
import { configureProfileCommand } from "../../cli/commands/profile.ts";
import { profileSchema } from "../../loadgen/profile-options.ts";
import { peersOrSkip, runPeer } from "./peers.ts";

const { peers, skip } = peersOrSkip();

/** inferbench's own flags: not claimed to be genai-perf's. */
const EXTENSIONS = new Set([
  "--request-distribution", // genai-perf passes it to perf_analyzer after `--` (also accepted there)
  "--burstiness",
  "--max-concurrency",
  "--workload",
  "--sharegpt-max-conversations",
  "--users",
  "--rounds",
  "--system-prompt-tokens",
  "--question-tokens",
  "--answer-tokens",
  "--groups",
  "--prompts-per-group",
  "--time-scale",
  "--max-requests",
  "--servegen-dataset",
  "--ignore-eos",
  "--min-tokens",
  "--max-error-rate",
  "--session-header",
  "--sweep",
  "--server-usage",
  "--request-timeout",
  "--emulated",
  "--progress",
  "--json",
]);

/** Older genai-perf flags inferbench still accepts (and ignores); gone from the pinned version. */
const OLD_FLAGS = new Set(["--service-kind", "--output-format"]);

/** Claimed flags that differ from the pinned genai-perf, and why (the test checks they still do). */
const KNOWN_DIFFERENCES: Record<string, { kind: "arity" | "default"; why: string }> = {
  "--fixed-schedule": {
    kind: "arity",
    why: "genai-perf 0.0.16 takes a value (type=bool: any non-empty word is true); inferbench's is a switch, so `--fixed-schedule true` leaves `true` to the perf_analyzer arguments",
  },
  "--endpoint-type": {
    kind: "default",
    why: "genai-perf defaults to kserve (Triton); inferbench speaks OpenAI only and defaults to chat",
  },
  "--url": {
    kind: "default",
    why: "genai-perf's default localhost:8001 is Triton's gRPC port; inferbench defaults to vLLM's localhost:8000",
  },
  "--artifact-dir": {
    kind: "default",
    why: "genai-perf writes ./artifacts, inferbench artifacts: the same folder",
  },
};

interface HelpFlag {
  names: string[];
  takesValue: boolean;
}

/** Option entries of an argparse help text: `  -m MODEL [MODEL ...], --model MODEL [MODEL ...]`. */
export function parseArgparseHelp(help: string): Map<string, HelpFlag> {
  const out = new Map<string, HelpFlag>();
  for (const line of help.split("\n")) {
    const m = /^ {2}(-[^\s].*?)(?: {2,}|$)/.exec(line);
    if (!m) continue;
    const aliases = m[1]!.split(/, (?=-)/);
    const flag: HelpFlag = { names: [], takesValue: false };
    for (const a of aliases) {
      const [name, ...rest] = a.trim().split(" ");
      flag.names.push(name!);
      if (rest.length > 0) flag.takesValue = true;
    }
    for (const n of flag.names) out.set(n, flag);
  }
  return out;
}

const flagOf = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

function inferbenchOptions(): Map<string, Option> {
  const cmd = configureProfileCommand(new Command("profile"));
  const out = new Map<string, Option>();
  for (const o of cmd.options) out.set(o.long!.replace(/^--no-/, "--"), o);
  return out;
}

describe("genai-perf profile --help has every flag inferbench claims", { skip }, () => {
  let help: Map<string, HelpFlag>;
  let defaults: Record<string, unknown>;
  const ours = inferbenchOptions();
  const claimed = Object.keys(profileSchema.shape)
    .map(flagOf)
    .filter((f) => !EXTENSIONS.has(f));

  before(async () => {
    const { stdout } = await runPeer(peers!.genaiPerf, ["profile", "--help"]);
    help = parseArgparseHelp(stdout);
    assert.ok(help.size > 40, `parsed ${help.size} flags from genai-perf profile --help`);
    // genai-perf's own defaults (config_defaults.py), for the flags whose default is plain.
    const py = `
import json
from genai_perf.config.input.config_defaults import *
print(json.dumps({
  "--synthetic-input-tokens-mean": SyntheticTokenDefaults.MEAN,
  "--synthetic-input-tokens-stddev": SyntheticTokenDefaults.STDDEV,
  "--output-tokens-stddev": OutputTokenDefaults.STDDEV,
  "--random-seed": InputDefaults.RANDOM_SEED,
  "--warmup-request-count": PerfAnalyzerDefaults.WARMUP_REQUEST_COUNT,
  "--profile-export-file": OutputDefaults.PROFILE_EXPORT_FILE,
  "--model-selection-strategy": EndPointDefaults.MODEL_SELECTION_STRATEGY.name.lower(),
  "--artifact-dir": OutputDefaults.ARTIFACT_DIRECTORY,
  "--url": EndPointDefaults.URL,
  "--endpoint-type": EndPointDefaults.TYPE,
}))`;
    const { stdout: d } = await runPeer(peers!.python, ["-c", py]);
    defaults = JSON.parse(d.trim().split("\n").pop()!) as Record<string, unknown>;
  });

  it("every claimed flag is an inferbench option", () => {
    for (const f of claimed) assert.ok(ours.has(f), `${f} is in the schema but not on the command`);
    for (const f of ours.keys())
      assert.ok(
        claimed.includes(f) || EXTENSIONS.has(f),
        `${f}: an option that is neither claimed nor listed as an extension`,
      );
  });

  it("exists in genai-perf with the same short alias and arity (or a listed difference)", () => {
    const problems: string[] = [];
    for (const f of claimed.filter((x) => !OLD_FLAGS.has(x))) {
      const g = help.get(f);
      if (!g) {
        problems.push(`${f}: not in genai-perf ${peers!.versions["genai-perf"]} profile --help`);
        continue;
      }
      const o = ours.get(f)!;
      if (o.short && !g.names.includes(o.short))
        problems.push(`${f}: inferbench's ${o.short} is not genai-perf's (${g.names.join(", ")})`);
      const oursTakesValue = o.required || o.optional;
      const known = KNOWN_DIFFERENCES[f]?.kind === "arity";
      if ((oursTakesValue !== g.takesValue) !== known)
        problems.push(
          known
            ? `${f}: listed as an arity difference, but both now ${g.takesValue ? "take" : "do not take"} a value: remove it from KNOWN_DIFFERENCES`
            : `${f}: genai-perf ${g.takesValue ? "takes" : "takes no"} value, inferbench ${oursTakesValue ? "takes" : "takes no"} value`,
        );
    }
    assert.deepEqual(problems, []);
  });

  it("has genai-perf's defaults (or a listed difference)", () => {
    const problems: string[] = [];
    for (const [f, g] of Object.entries(defaults)) {
      const mine = ours.get(f)!.defaultValue as unknown;
      const same = String(mine) === String(g);
      const known = KNOWN_DIFFERENCES[f]?.kind === "default";
      if (same === known)
        problems.push(
          known
            ? `${f}: listed as a default difference but both default to ${String(g)}`
            : `${f}: genai-perf defaults to ${JSON.stringify(g)}, inferbench to ${JSON.stringify(mine)}`,
        );
    }
    assert.deepEqual(problems, []);
  });

  it("the old flags are gone from the pinned genai-perf (accepted for older versions' scripts)", () => {
    for (const f of OLD_FLAGS) {
      assert.ok(claimed.includes(f), `${f} is accepted by inferbench`);
      assert.equal(help.has(f), false, `${f} is back in genai-perf: move it to the claimed flags`);
    }
  });
});
