import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { writeFileAtomicSync } from "../../lib/atomic.ts";
import { createLogger } from "../../lib/logger.ts";
import {
  formatPrometheusText,
  parsePrometheusText,
  sumFirstPresent,
} from "../../lib/prometheus.ts";
import { REDACTED, redactObject, redactSecrets, registerSecret } from "../../lib/redact.ts";

describe("redaction", () => {
  it("registered secrets and token-shaped strings never reach output", () => {
    registerSecret("s3cr3t-value-xyz");
    const lines: string[] = [];
    const log = createLogger("t", (l) => lines.push(l));
    log.info(
      "token s3cr3t-value-xyz and hf_abcdefghijklmnopqrstuvwx and Authorization: Bearer abc.def",
    );
    assert.equal(lines.length, 1);
    assert.ok(!/s3cr3t|hf_abc|abc\.def/.test(lines[0]!), lines[0]);
    assert.equal(redactSecrets("plain text"), "plain text");
  });
  it("redactObject hides secret keys but keeps look-alikes such as maxCachedTokens", () => {
    const out = redactObject({
      hfToken: "x",
      engine: { maxCachedTokens: 16000 },
      run: { apiKey: "k" },
    });
    assert.deepEqual(out, {
      hfToken: REDACTED,
      engine: { maxCachedTokens: 16000 },
      run: { apiKey: REDACTED },
    });
  });
});

describe("prometheus text", () => {
  it("round-trips families and sums by name with V1→V0 fallback", () => {
    const text = formatPrometheusText([
      {
        name: "vllm:gpu_cache_usage_perc",
        help: "old name",
        type: "gauge",
        samples: [{ labels: { model_name: 'a"b\\c', engine: "0" }, value: 0.25 }],
      },
      {
        name: "vllm:num_requests_running",
        help: "r",
        type: "gauge",
        samples: [{ labels: {}, value: 3 }],
      },
    ]);
    const parsed = parsePrometheusText(text);
    assert.equal(parsed.types.get("vllm:num_requests_running"), "gauge");
    assert.equal(parsed.samples[0]!.labels.model_name, 'a"b\\c');
    assert.equal(
      sumFirstPresent(parsed.samples, ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]),
      0.25,
    );
  });
  it("parses +Inf buckets and rejects garbage with a line number", () => {
    const p = parsePrometheusText('h_bucket{le="+Inf"} 4\nh_sum 1.5 1700000000\n');
    assert.equal(p.samples[0]!.value, 4);
    assert.throws(() => parsePrometheusText("ok 1\nbad{x=1} 2\n"), /line 2/);
  });
  it("never throws anything but a parse error on random input", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          parsePrometheusText(s);
        } catch (e) {
          assert.equal((e as Error).name, "PrometheusParseError");
        }
      }),
    );
  });
});

describe("atomic writes", () => {
  const dir = mkdtempSync(join(tmpdir(), "inferbench-atomic-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  it("writes the whole file and leaves no temporary behind", () => {
    writeFileAtomicSync(join(dir, "a", "f.json"), "{}");
    assert.equal(readFileSync(join(dir, "a", "f.json"), "utf8"), "{}");
    assert.deepEqual(readdirSync(join(dir, "a")), ["f.json"]);
  });
});
