import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { InputFileError, UserError } from "../../lib/errors.ts";
import { loadArtifactSide } from "../../results/artifact-sides.ts";

const FIX = new URL("../../fixtures/genai-perf/", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "ib-artifact-sides-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A folder laid out as genai-perf leaves it, holding the given fixture files under new names. */
function folder(name: string, files: Record<string, string>): string {
  const root = join(dir, name);
  const sub = join(root, "m-openai-chat-concurrency1");
  mkdirSync(sub, { recursive: true });
  for (const [fixture, as] of Object.entries(files))
    copyFileSync(join(FIX, fixture), join(sub, as));
  return root;
}

describe("GenAI-Perf artifact folders as comparison sides", () => {
  it("genai-perf's own raw export becomes one point per model, every request re-measured", () => {
    const root = folder("raw", {
      "genai_perf_testfixture_openai_chat_profile_export.json": "profile_export.json",
    });
    const side = loadArtifactSide(root, "A");
    assert.ok(side.points.length >= 1);
    const samples = side.points.flatMap((p) => p.samples);
    assert.ok(samples.length > 0);
    assert.ok(samples.some((s) => s.ok && typeof s.ttftMs === "number" && s.ttftMs > 0));
    assert.equal(side.emulated, false);
  });

  it("a folder with only GenAI-Perf's summary says what is missing and where it comes from", () => {
    const root = folder("summary-only", {
      "pa298_triton_streaming_profile_export_genai_perf.json": "profile_export_genai_perf.json",
      "pa393_openai_chat_streaming_profile_export_genai_perf.csv": "profile_export_genai_perf.csv",
    });
    assert.throws(
      () => loadArtifactSide(root, "A"),
      (e: unknown) =>
        e instanceof UserError &&
        /found GenAI-Perf summaries .*profile_export_genai_perf\.csv.* but no profile_export\.json/.test(
          e.message,
        ) &&
        /copy it from the original artifact folder/.test(e.hint ?? ""),
    );
  });

  it("a folder with neither is not an artifact folder", () => {
    mkdirSync(join(dir, "empty"));
    assert.throws(() => loadArtifactSide(join(dir, "empty"), "A"), /no profile_export\.json found/);
  });

  /** genai-perf's raw fixture, changed by `edit`, in a folder of its own. */
  const edited = (name: string, edit: (exp: Record<string, unknown>) => string) => {
    const root = folder(name, {});
    const raw = JSON.parse(
      readFileSync(join(FIX, "genai_perf_testfixture_openai_chat_profile_export.json"), "utf8"),
    ) as Record<string, unknown>;
    const file = join(root, "m-openai-chat-concurrency1", "profile_export.json");
    writeFileSync(file, edit(raw));
    return { root, file };
  };
  const requestsOf = (exp: Record<string, unknown>) =>
    (exp.experiments as { requests: Record<string, unknown>[] }[])[0]!.requests;
  const refused = (root: string, file: string, re: RegExp) =>
    assert.throws(
      () => loadArtifactSide(root, "A"),
      (e: unknown) => e instanceof InputFileError && e.message.includes(file) && re.test(e.message),
    );

  it("a truncated export is refused naming the file, never compared", () => {
    const { root, file } = edited("truncated", (x) => JSON.stringify(x).slice(0, 500));
    refused(root, file, /not a perf_analyzer profile export/);
  });

  it("a response before its request, or out of order, is refused naming the record", () => {
    const early = edited("early", (x) => {
      const r = requestsOf(x)[1]!;
      r.response_timestamps = [Number(r.timestamp) - 5, ...(r.response_timestamps as number[])];
      return JSON.stringify(x);
    });
    refused(
      early.root,
      early.file,
      /experiments\[0\]\.requests\[1\]\.response_timestamps\[0\] = -?\d+ is before the request's timestamp/,
    );
    const swapped = edited("swapped", (x) => {
      const r = requestsOf(x)[0]!;
      const t = r.response_timestamps as number[];
      r.response_timestamps = [t.at(-1), ...t.slice(1, -1), t[0]];
      return JSON.stringify(x);
    });
    refused(
      swapped.root,
      swapped.file,
      /requests\[0\]\.response_timestamps\[\d+\] = \d+ is before response/,
    );
  });

  it("a time that is not an integer (NaN, text) is refused naming the field", () => {
    const { root, file } = edited("nan", (x) => {
      requestsOf(x)[1]!.timestamp = "NaN";
      return JSON.stringify(x);
    });
    refused(
      root,
      file,
      /experiments\[0\]\.requests\[1\]\.timestamp: expected an integer time in ns, got "NaN"/,
    );
  });

  it("a point the run marked INVALID stays invalid; the SLOs of the run's goodput are kept", () => {
    const { root } = edited("gated", (x) => JSON.stringify(x));
    const sub = join(root, "m-openai-chat-concurrency1");
    writeFileSync(
      join(sub, "profile_export_inferbench.json"),
      JSON.stringify({ valid: false, invalid_reasons: ["schedule lag p99 20 ms > 8 ms"] }),
    );
    writeFileSync(
      join(sub, "profile_export_genai_perf.json"),
      JSON.stringify({
        input_config: { input: { goodput: { time_to_first_token: 200, request_latency: 5000 } } },
      }),
    );
    const side = loadArtifactSide(root, "A");
    assert.ok(side.points.length > 0);
    assert.ok(
      side.points.every((p) => !p.valid && p.invalidReason === "schedule lag p99 20 ms > 8 ms"),
    );
    assert.deepEqual(side.slo, { ttftMs: 200, e2eMs: 5000 });
    // A peer's folder (no inferbench extras, no goodput) is valid with no SLOs.
    const peer = loadArtifactSide(edited("peer", (x) => JSON.stringify(x)).root, "B");
    assert.ok(peer.points.every((p) => p.valid));
    assert.deepEqual(peer.slo, {});
  });
});

describe("per-request records", () => {
  it("impossible timings are refused naming file and line", async () => {
    const { readRecords } = await import("../../results/run-sides.ts");
    const file = join(dir, "records.jsonl");
    const ok = {
      model: "m",
      status: "ok",
      sent_ns: 1_000_000,
      end_ns: 9_000_000,
      ttft_ns: 2_000_000,
      latency_ns: 8_000_000,
      osl_tokens: 4,
    };
    for (const [bad, re] of [
      [{ ttft_ns: 9e9 }, /ttft_ns 9000000000 exceeds the request's end-to-end time 8000000/],
      [{ end_ns: 500 }, /end_ns 500 is before sent_ns 1000000/],
      [{ sent_ns: "abc" }, /are not finite numbers/],
      [{ latency_ns: -1 }, /latency_ns -1 is not a non-negative number/],
      [{ osl_tokens: 2.5 }, /osl_tokens 2\.5 is not a non-negative integer/],
    ] as const) {
      writeFileSync(file, `${JSON.stringify(ok)}\n${JSON.stringify({ ...ok, ...bad })}\n`);
      assert.throws(
        () => readRecords(file, 0),
        (e: unknown) =>
          e instanceof InputFileError && e.message.includes(`${file}:2`) && re.test(e.message),
        JSON.stringify(bad),
      );
    }
    writeFileSync(file, `${JSON.stringify(ok)}\n`);
    assert.equal(readRecords(file, 0).length, 1);
  });
});
