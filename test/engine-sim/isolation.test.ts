/**
 * No single hostile request stalls engine-sim for other clients (issue 19): while a 15 MB body,
 * a 1 MB prompt, a random-text prompt, 4 MB of nested JSON, a 3.8 MB token-id list and a body
 * that never completes are sent to an engine-sim process, a normal streaming request keeps its
 * inter-token gaps within 50 ms, short requests keep their TTFT, and each hostile request gets
 * its 4xx. Each hostile request is sent three times and judged by its best try: a stall it
 * causes shows in every try, this shared machine's scheduling noise does not.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, describe, it } from "node:test";
import { measureStalls } from "./hostile.ts";
import { exitWithin, readyPort, runEngineSim } from "./process.ts";

const STALL_LIMIT_MS = 50;

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

describe("engine-sim isolation: hostile requests do not stall other clients", () => {
  it("a streaming probe keeps its ITL and TTFT while hostile requests arrive", async () => {
    const p = runEngineSim([
      "--profile",
      "llama-3.1-8b@h100",
      "--model",
      "m",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--max-model-len",
      "8192",
      "--request-timeout",
      "2",
    ]);
    children.push(p.child);
    const port = await readyPort(p, "m");
    const r = await measureStalls(port, "m", 3);
    const summary = JSON.stringify(r);
    const expected: Record<string, number> = {
      "15 MB body": 413,
      "15 MB body, chunked": 413,
    };
    for (const h of r.hostile) {
      for (const s of h.status) assert.equal(s, expected[h.name] ?? 400, `${h.name}: ${summary}`);
      const best = Math.min(...h.maxGapMs);
      assert.ok(
        best <= STALL_LIMIT_MS,
        `${h.name}: the probe stalled ${best} ms at best of ${h.maxGapMs.join("/")} ms: ${summary}`,
      );
    }
    assert.equal(r.during.slowBodyStatus, 408, summary);
    // The probe streamed throughout at its usual pace, and short requests were answered promptly.
    assert.ok(r.during.tokens > 100, summary);
    assert.ok(r.during.p50GapMs < 2 * r.baseline.p50GapMs + 2, summary);
    assert.ok(r.during.ttftSamples >= 5, summary);
    assert.ok(r.during.ttftP50Ms <= r.baseline.ttftP50Ms + STALL_LIMIT_MS, summary);
    p.child.kill("SIGTERM");
    assert.equal(await exitWithin(p), 0, p.output());
  });
});
