/**
 * `inferbench import` on real peer outputs (fixtures/peers/, made by peers/make-fixtures.sh with
 * the pinned tools; no peer needed here): what each importer reads back agrees with the tool's own
 * summary, compare reads the imports beside inferbench's artifacts and refuses mixed metric
 * definitions, and bad input names the file and field and writes nothing.
 */
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { compareSpecs } from "../../cli/commands/compare.ts";
import { UserError } from "../../lib/errors.ts";
import { loadArtifactSide } from "../../results/artifact-sides.ts";
import { summarizeSide } from "../../results/compare.ts";
import { readPeerRun, writeImport } from "../../results/importers/index.ts";
import { ROOT } from "./peers.ts";

const FX = join(ROOT, "fixtures/peers");
const GENAI = join(FX, "genai-perf/llama-3.1-8b-openai-completions-concurrency2");
const json = (f: string) => JSON.parse(readFileSync(f, "utf8"));
/** compare takes E2E as end − start of epoch-ns doubles: ~0.25 µs steps at today's epoch. */
const E2E = 1e-5;
const near = (a: number, b: number, rel: number, what: string) =>
  assert.ok(Math.abs(a - b) <= rel * Math.abs(b), `${what}: ${a} vs ${b}`);

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "ib-import-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function imported(from: string, src: string, name: string): string {
  const out = join(dir, name);
  writeImport(readPeerRun(from, src), out, { version: "test", emulated: true });
  return out;
}

describe("importers read back what the tool reported", () => {
  it("aiperf: per-request TTFT, latency and ITL give AIPerf's own summary", () => {
    const out = imported("aiperf", join(FX, "aiperf/chat"), "aiperf-chat");
    const side = loadArtifactSide(out, "aiperf-chat");
    assert.equal(side.label, "aiperf-chat (aiperf 0.13.0)");
    assert.equal(side.emulated, true);
    assert.equal(side.points.length, 1);
    const p = side.points[0]!;
    assert.equal(p.point, "concurrency 2");
    assert.equal(p.samples.length, 10);
    const s = summarizeSide("a", p, {});
    const ap = json(join(FX, "aiperf/chat/profile_export_aiperf.json"));
    near(s.ttftMs!.p50, ap.time_to_first_token.p50, 1e-6, "TTFT p50");
    near(s.ttftMs!.p99, ap.time_to_first_token.p99, 1e-6, "TTFT p99");
    near(s.e2eMs.p99, ap.request_latency.p99, E2E, "latency p99");
    near(s.itlMs!.mean, ap.inter_token_latency.avg, 0.005, "ITL mean (the same formula)");
    // AIPerf divides by its phase duration; compare by first send → last byte.
    near(s.achievedRps, ap.request_throughput.avg, 0.1, "request throughput");
    const m = json(join(out, "import.json"));
    assert.equal(m.tool, "aiperf");
    assert.equal(m.sourceSchemaVersion, "1.4");
    assert.equal(m.definitions.time_to_first_token.tool, "aiperf 0.13.0");
    assert.ok(m.files.some((f: { path: string }) => f.path === "profile_export.jsonl"));
    assert.match(m.files[0].sha256, /^[0-9a-f]{64}$/);
  });

  it("aiperf: failed requests come through as errors with their HTTP status", () => {
    const run = readPeerRun("aiperf", join(FX, "aiperf/errors"));
    const recs = run.points[0]!.records;
    assert.equal(recs.length, 12);
    const errs = recs.filter((r) => r.status === "error");
    assert.equal(errs.length, 4);
    assert.ok(errs.every((r) => r.http_status === 500 && /injected fault/.test(r.error!)));
    const side = loadArtifactSide(imported("aiperf", join(FX, "aiperf/errors"), "aiperf-err"), "e");
    assert.equal(summarizeSide("e", side.points[0]!, {}).errors, 4);
  });

  it("genai-perf: re-measured from the raw export, equal to genai-perf's summary", () => {
    const run = readPeerRun("genai-perf", join(FX, "genai-perf"));
    assert.equal(run.points.length, 1);
    const p = run.points[0]!;
    assert.equal(p.folder, "llama-3.1-8b-openai-completions-concurrency2");
    assert.ok(p.records.every((r) => r.isl_tokens === 32 && r.osl_tokens === 16));
    assert.ok(run.checks.some((c) => /agree with genai-perf's summary/.test(c)));
    const side = loadArtifactSide(imported("genai-perf", GENAI, "genai"), "g");
    const s = summarizeSide("g", side.points[0]!, {});
    const g = json(join(GENAI, "profile_export_genai_perf.json"));
    near(s.ttftMs!.p50, g.time_to_first_token.p50, 1e-6, "TTFT p50");
    near(s.e2eMs.p99, g.request_latency.p99, E2E, "latency p99");
    near(s.itlMs!.mean, g.inter_token_latency.avg, 0.005, "ITL mean");
  });

  it("perf-analyzer: a request-rate export becomes a request-rate point", () => {
    const out = imported("perf-analyzer", join(FX, "perf-analyzer"), "pa");
    const side = loadArtifactSide(out, "pa");
    assert.equal(side.points[0]!.point, "request rate 10/s");
    assert.equal(side.points[0]!.samples.length, 12);
    assert.ok(side.points[0]!.samples.every((x) => x.ok && x.ttftMs! > 0));
    assert.ok(
      existsSync(join(out, "llama-3.1-8b-openai-chat-request_rate10.0/profile_export.json")),
    );
  });
});

describe("compare across tools", () => {
  it("sets an import beside a GenAI-Perf artifact folder, naming the tool in the label", () => {
    const c = compareSpecs([GENAI, imported("aiperf", join(FX, "aiperf/errors"), "cmp-a")], dir, {
      force: true,
    });
    assert.equal(c.rows.length, 1);
    assert.match(c.labels.b, /\(aiperf 0\.13\.0\)$/);
  });

  it("refuses mixed definitions (AIPerf OSL from server usage) unless --allow-mixed-definitions", () => {
    const chat = imported("aiperf", join(FX, "aiperf/chat"), "cmp-chat");
    const server = imported("aiperf", join(FX, "aiperf/server-tokens"), "cmp-server");
    assert.throws(
      () => compareSpecs([chat, server], dir, {}),
      (e: unknown) =>
        e instanceof UserError &&
        /output_sequence_length: aiperf 0\.13\.0 measures "tokens of the concatenated output text.*server's usage/s.test(
          e.message,
        ) &&
        /--allow-mixed-definitions/.test(e.hint ?? ""),
    );
    const c = compareSpecs([chat, server], dir, { allowMixedDefinitions: true });
    assert.ok(c.notes.some((n) => /Mixed metric definitions/.test(n)));
    // Same definitions: no refusal.
    assert.equal(compareSpecs([GENAI, chat], dir, { force: true }).rows.length, 1);
  });
});

/** Asserts the import fails naming `file` (and `field`), and leaves no output behind. */
function refuses(from: string, src: string, file: RegExp, field?: RegExp): void {
  const out = join(dir, `bad-${Math.random().toString(36).slice(2)}`);
  assert.throws(
    () => writeImport(readPeerRun(from, src), out, { version: "t", emulated: false }),
    (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.equal(e.exitCode, 2);
      assert.match(e.message, file);
      if (field) assert.match(e.message, field);
      return true;
    },
  );
  assert.equal(existsSync(out), false, "nothing written");
  assert.equal(existsSync(`${out}.partial`), false);
}

describe("bad input names the file and field and imports nothing", () => {
  const copy = (src: string, name: string) => {
    const d = join(dir, name);
    cpSync(src, d, { recursive: true });
    return d;
  };

  it("the wrong tool's files", () => {
    refuses("aiperf", GENAI, /no profile_export_aiperf\.json: not an AIPerf output folder/);
    refuses("genai-perf", join(FX, "aiperf/chat"), /no \*_genai_perf\.json/);
    refuses("perf-analyzer", GENAI, /genai-perf artifact folder/);
    refuses("perf-analyzer", join(FX, "aiperf/chat"), /found 0/);
  });

  it("a truncated AIPerf record file (cut mid-line, or lines missing)", () => {
    const d = copy(join(FX, "aiperf/chat"), "trunc-aiperf");
    const f = join(d, "profile_export.jsonl");
    const text = readFileSync(f, "utf8");
    writeFileSync(f, text.slice(0, Math.floor(text.length * 0.7)));
    refuses("aiperf", d, /profile_export\.jsonl:\d+: not valid JSON: truncated/);
    writeFileSync(f, text.split("\n").slice(0, 7).join("\n"));
    refuses(
      "aiperf",
      d,
      /profile_export\.jsonl: 7 completed and 0 failed records, but .* counts 10/,
    );
  });

  it("an unknown AIPerf schema version, an unfinished run, a missing field", () => {
    const d = copy(join(FX, "aiperf/chat"), "schema-aiperf");
    const f = join(d, "profile_export_aiperf.json");
    const s = json(f);
    writeFileSync(f, JSON.stringify({ ...s, schema_version: "9.9" }));
    refuses(
      "aiperf",
      d,
      /profile_export_aiperf\.json: schema_version: expected one of 1\.4/,
      /"9\.9"/,
    );
    writeFileSync(f, JSON.stringify({ ...s, is_complete: false }));
    refuses("aiperf", d, /is_complete: expected true/);
    const noPhase = structuredClone(s);
    noPhase.input_config.phases = [];
    writeFileSync(f, JSON.stringify(noPhase));
    refuses("aiperf", d, /input_config\.phases: expected a phase of kind profiling/);
  });

  it("a truncated or altered perf_analyzer export", () => {
    const d = copy(join(FX, "perf-analyzer"), "trunc-pa");
    const f = join(d, "profile_export.json");
    const text = readFileSync(f, "utf8");
    writeFileSync(f, text.slice(0, text.length - 200));
    refuses("perf-analyzer", d, /profile_export\.json: not valid JSON/);
    const o = JSON.parse(text);
    delete o.experiments[0].requests[3].response_outputs;
    writeFileSync(f, JSON.stringify(o));
    refuses(
      "perf-analyzer",
      d,
      /experiments\[0\]\.requests\[3\]\.response_outputs: expected an array, missing/,
    );
    o.endpoint = "v1/embeddings";
    writeFileSync(f, JSON.stringify(o));
    refuses("perf-analyzer", d, /endpoint: expected one of v1\/chat\/completions, v1\/completions/);
  });

  it("a genai-perf summary whose raw export is cut or from another run", () => {
    const d = copy(join(FX, "genai-perf"), "trunc-genai");
    const f = join(d, "llama-3.1-8b-openai-completions-concurrency2/profile_export.json");
    const o = json(f);
    o.experiments[0].requests.pop();
    writeFileSync(f, JSON.stringify(o));
    refuses(
      "genai-perf",
      d,
      /profile_export_genai_perf\.json: request_count\.avg is 10 but the raw export beside it holds 9/,
    );
    rmSync(f);
    refuses("genai-perf", d, /its raw export .* is missing/);
  });

  it("--out never overwrites", () => {
    const out = join(dir, "full");
    mkdirSync(out);
    writeFileSync(join(out, "x"), "keep");
    assert.throws(
      () =>
        writeImport(readPeerRun("aiperf", join(FX, "aiperf/chat")), out, {
          version: "t",
          emulated: false,
        }),
      /exists and is not empty/,
    );
    assert.equal(readFileSync(join(out, "x"), "utf8"), "keep");
  });
});
