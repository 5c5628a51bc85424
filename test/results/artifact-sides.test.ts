import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { UserError } from "../../lib/errors.ts";
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
});
