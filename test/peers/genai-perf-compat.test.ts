/**
 * GenAI-Perf compatibility, proven by genai-perf 0.0.16 itself:
 *  - genai-perf's own parser (LLMProfileDataParser, through peers/genai-perf-parse.py) reads
 *    inferbench's profile_export.json and reproduces inferbench's profile_export_genai_perf.json:
 *    the same metrics, every statistic within 0.5 %, token counts included (chat and completions,
 *    streaming and not, single- and multi-turn);
 *  - a real genai-perf + perf_analyzer run against the same server writes the same input_config
 *    (key paths, order, JSON types and values), the same raw-export shape and the same CSV rows.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Command } from "commander";
import { registerProfile, runProfile } from "../../cli/commands/profile.ts";
import {
  type Backend,
  peersOrSkip,
  ROOT,
  runPeer,
  runPeerRetried,
  startEngineSim,
} from "./peers.ts";

const { peers, skip } = peersOrSkip();

type Stats = Record<string, Record<string, number | string>>;

/** Runs `inferbench profile` in-process (through commander, as the CLI parses it); returns the run folder. */
async function inferbenchProfile(args: string[], artifactDir: string): Promise<string> {
  const p = new Command("inferbench").exitOverride();
  registerProfile(p);
  const cmd = p.commands[0]!.exitOverride();
  let captured: { raw: Record<string, unknown>; pa: string[] } | undefined;
  cmd.action((pa: string[], raw: Record<string, unknown>) => {
    captured = { raw, pa };
  });
  await cmd.parseAsync([...args, "--artifact-dir", artifactDir, "--no-progress", "--json"], {
    from: "user",
  });
  // Exit 3 (the loaded machine's generator lagged) still leaves complete artifacts to compare.
  const code = await runProfile(captured!.raw, captured!.pa, { write: () => true });
  assert.ok(code === 0 || code === 3, `inferbench profile exited ${code}`);
  const runs = readdirSync(artifactDir);
  assert.equal(runs.length, 1, `one run folder in ${artifactDir}`);
  return join(artifactDir, runs[0]!);
}

async function genaiPerfParse(exportFile: string): Promise<Stats> {
  const { stdout } = await runPeer(peers!.python, [
    join(ROOT, "peers/genai-perf-parse.py"),
    exportFile,
    peers!.tokenizer,
  ]);
  const parsed = JSON.parse(stdout) as { experiments: { stats: Stats }[] };
  assert.equal(parsed.experiments.length, 1);
  return parsed.experiments[0]!.stats;
}

/** Every statistic of genai-perf's parse must be in ours within 0.5 %, and no metric extra. */
function assertAgree(genai: Stats, ours: Stats, what: string): void {
  const ourMetrics = Object.keys(ours).filter((k) => k !== "input_config");
  assert.deepEqual(ourMetrics.sort(), Object.keys(genai).sort(), `${what}: metric names`);
  for (const [metric, stats] of Object.entries(genai)) {
    for (const [stat, g] of Object.entries(stats)) {
      const o = ours[metric]![stat];
      if (typeof g === "string") {
        assert.equal(o, g, `${what}: ${metric}.${stat}`);
        continue;
      }
      assert.equal(typeof o, "number", `${what}: ${metric}.${stat} missing`);
      const rel = Math.abs((o as number) - g) / Math.max(Math.abs(g), 1e-9);
      assert.ok(rel <= 0.005, `${what}: ${metric}.${stat} genai-perf ${g} vs inferbench ${o}`);
    }
  }
}

const SYNTH = [
  "--concurrency",
  "2",
  "--request-count",
  "12",
  "--synthetic-input-tokens-mean",
  "32",
  "--output-tokens-mean",
  "16",
];

describe("genai-perf's parser reproduces inferbench's summary", { skip }, () => {
  let backend: Backend;
  let dir: string;
  before(async () => {
    backend = await startEngineSim();
    dir = mkdtempSync(join(tmpdir(), "ib-peers-compat-"));
  });
  after(async () => {
    await backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, string[]][] = [
    ["completions, streaming", ["--endpoint-type", "completions", "--streaming", ...SYNTH]],
    ["completions, not streaming", ["--endpoint-type", "completions", ...SYNTH]],
    ["chat, streaming", ["--endpoint-type", "chat", "--streaming", ...SYNTH]],
    ["chat, not streaming", ["--endpoint-type", "chat", ...SYNTH]],
    [
      "chat, streaming, multi-turn (multi-round-qa: history in messages)",
      [
        "--endpoint-type",
        "chat",
        "--streaming",
        "--workload",
        "multi-round-qa",
        "--users",
        "2",
        "--rounds",
        "3",
        "--system-prompt-tokens",
        "24",
        "--question-tokens",
        "12",
        "--answer-tokens",
        "8",
        "--concurrency",
        "2",
      ],
    ],
  ];
  cases.forEach(([name, args], i) => {
    it(name, async () => {
      const run = await inferbenchProfile(
        ["-m", "llama-3.1-8b", "-u", backend.url, ...args],
        join(dir, `case${i}`),
      );
      const ours = JSON.parse(readFileSync(join(run, "profile_export_genai_perf.json"), "utf8"));
      const genai = await genaiPerfParse(join(run, "profile_export.json"));
      assertAgree(genai, ours, name);
      if (args.includes("--synthetic-input-tokens-mean")) {
        // The prompt is a one-element list as genai-perf sends it; a bare string made genai-perf
        // join its characters and count ~200 input tokens instead of 32.
        assert.equal(
          genai["input_sequence_length"]!["avg"],
          32,
          "genai-perf counts 32 input tokens",
        );
        assert.equal(genai["output_sequence_length"]!["avg"], 16);
      }
    });
  });
});

/** Key paths with their JSON types, in order ("/endpoint/backend:string"). */
function shape(v: unknown, path = ""): string[] {
  if (v === null || typeof v !== "object" || Array.isArray(v))
    return [`${path}:${Array.isArray(v) ? "array" : v === null ? "null" : typeof v}`];
  return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => shape(x, `${path}/${k}`));
}

/** Python's float vs int survives only in the text: "999" vs "999.0". */
function numberKinds(text: string): string[] {
  return [...text.matchAll(/"(\w+)": (-?\d+(\.\d+)?)[,\n]/g)].map(
    (m) => `${m[1]}:${m[3] ? "float" : "int"}`,
  );
}

describe("a real genai-perf run writes what inferbench writes", { skip }, () => {
  let backend: Backend;
  let dir: string;
  before(async () => {
    backend = await startEngineSim();
    dir = mkdtempSync(join(tmpdir(), "ib-peers-genai-"));
  });
  after(async () => {
    await backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("same flags → same input_config, raw-export shape and CSV rows (request rate, goodput, extra inputs, header)", async () => {
    const flags = [
      "-m",
      "llama-3.1-8b",
      "--endpoint-type",
      "completions",
      "--streaming",
      "-u",
      backend.url,
      "--request-rate",
      "20",
      "--request-count",
      "20",
      "--synthetic-input-tokens-mean",
      "32",
      "--output-tokens-mean",
      "16",
      "--goodput",
      "request_latency:2000",
      "--extra-inputs",
      "temperature:0.5",
      "-H",
      "X-Trace:abc",
      "--tokenizer",
      peers!.tokenizer,
    ];
    const gDir = join(dir, "genai-perf");
    await runPeerRetried(peers!.genaiPerf, ["profile", ...flags, "--artifact-dir", gDir], {
      cwd: dir,
      timeoutMs: 90_000,
      before: () => rmSync(gDir, { recursive: true, force: true }),
    });
    const gRun = join(gDir, readdirSync(gDir)[0]!);
    const iRun = await inferbenchProfile(flags, join(dir, "inferbench"));
    // Run folder name.
    assert.equal(iRun.split("/").pop(), gRun.split("/").pop());
    const gText = readFileSync(join(gRun, "profile_export_genai_perf.json"), "utf8");
    const iText = readFileSync(join(iRun, "profile_export_genai_perf.json"), "utf8");
    const g = JSON.parse(gText);
    const o = JSON.parse(iText);
    assert.deepEqual(Object.keys(o), Object.keys(g), "top-level metric keys and order");
    assert.deepEqual(shape(o["input_config"]), shape(g["input_config"]), "input_config shape");
    assert.deepEqual(numberKinds(iText), numberKinds(gText), "int vs float in the text");
    const ic = (x: Record<string, unknown>) => {
      const c = structuredClone(x["input_config"]) as Record<string, Record<string, unknown>>;
      c["output"]!["artifact_directory"] = "<dir>"; // differs by construction (two folders)
      return c;
    };
    assert.deepEqual(ic(o), ic(g), "input_config values");
    for (const m of Object.keys(g).filter((k) => k !== "input_config"))
      assert.deepEqual(Object.keys(o[m]), Object.keys(g[m]), `${m}: statistic keys`);

    // Raw export: same keys at every level; the payload's keys in genai-perf's order (plus our
    // documented stream_options, asked for the server's usage counts).
    const gRaw = JSON.parse(readFileSync(join(gRun, "profile_export.json"), "utf8"));
    const iRaw = JSON.parse(readFileSync(join(iRun, "profile_export.json"), "utf8"));
    assert.deepEqual(Object.keys(iRaw), Object.keys(gRaw));
    assert.equal(iRaw.service_kind, gRaw.service_kind);
    assert.equal(iRaw.endpoint, gRaw.endpoint);
    const [ge, ie] = [gRaw.experiments[0], iRaw.experiments[0]];
    assert.deepEqual(Object.keys(ie), Object.keys(ge));
    assert.deepEqual(ie.experiment, ge.experiment);
    assert.deepEqual(Object.keys(ie.requests[0]), Object.keys(ge.requests[0]));
    const gPayload = JSON.parse(ge.requests[0].request_inputs.payload);
    const iPayload = JSON.parse(ie.requests[0].request_inputs.payload);
    assert.deepEqual(
      Object.keys(iPayload).filter((k) => k !== "stream_options"),
      Object.keys(gPayload),
    );
    assert.ok(Array.isArray(gPayload.prompt) && Array.isArray(iPayload.prompt));
    for (const r of ie.requests)
      for (const out of r.response_outputs)
        assert.doesNotMatch(out.response, /"choices":\[\]/, "no usage-only event in the export");

    // CSV: same rows in the same order.
    const rows = (f: string) =>
      readFileSync(f, "utf8")
        .split("\r\n")
        .map((l) => l.replace(/,.*$/, "").replace(/^"/, ""));
    assert.deepEqual(
      rows(join(iRun, "profile_export_genai_perf.csv")),
      rows(join(gRun, "profile_export_genai_perf.csv")),
    );
  });
});
