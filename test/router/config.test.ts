import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UserError } from "../../lib/errors.ts";
import {
  classifyUpstreamError,
  DEFAULT_POLICY_OPTIONS,
  effectiveStaleMs,
  parseBackendsFlag,
  parseVllmLoad,
  routerConfigFromPlan,
} from "../../services/router/index.ts";
import type { RouterPlan } from "../../stacks/plan-types.ts";

describe("vLLM metrics parsing", () => {
  it("reads V1 names", () => {
    const t =
      'vllm:num_requests_running{model_name="a"} 3\nvllm:num_requests_waiting{model_name="a"} 2\nvllm:kv_cache_usage_perc{model_name="a"} 0.25\n';
    assert.deepEqual(parseVllmLoad(t), { running: 3, waiting: 2, kvUsage: 0.25 });
  });
  it("falls back to V0 gpu_cache_usage_perc", () => {
    const t =
      "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\nvllm:num_requests_waiting 0\nvllm:gpu_cache_usage_perc 0.5\n";
    assert.deepEqual(parseVllmLoad(t), { running: 1, waiting: 0, kvUsage: 0.5 });
  });
  it("returns undefined (unknown, not idle) when no queue gauge is present", () => {
    assert.equal(parseVllmLoad("process_cpu_seconds_total 4\n"), undefined);
  });
  it("sums across label sets", () => {
    const t = 'vllm:num_requests_running{engine="0"} 1\nvllm:num_requests_running{engine="1"} 2\n';
    assert.deepEqual(parseVllmLoad(t), { running: 3, waiting: 0, kvUsage: undefined });
  });
});

describe("upstream error classification", () => {
  it("connect errors never reached the replica: retry + eject", () => {
    for (const code of ["ECONNREFUSED", "EHOSTUNREACH", "UND_ERR_CONNECT_TIMEOUT"]) {
      const c = classifyUpstreamError(code);
      assert.equal(c.neverReached, true, code);
      assert.equal(c.eject, true, code);
    }
    assert.equal(classifyUpstreamError("UND_ERR_CONNECT_TIMEOUT").kind, "connect_timeout");
  });
  it("a header timeout is not retried (the replica has the request) but ejects", () => {
    assert.deepEqual(classifyUpstreamError("UND_ERR_HEADERS_TIMEOUT"), {
      kind: "timeout",
      neverReached: false,
      eject: true,
    });
  });
  it("a reset after sending is not retried", () => {
    for (const code of ["UND_ERR_SOCKET", "ECONNRESET", undefined])
      assert.equal(classifyUpstreamError(code).neverReached, false);
  });
});

describe("config", () => {
  it("parses --backends with replicas per model", () => {
    assert.deepEqual(
      parseBackendsFlag("a=http://127.0.0.1:8001, a=http://127.0.0.1:8002,b=http://[::1]:9000"),
      {
        a: [
          { engine: "a-0", url: "http://127.0.0.1:8001" },
          { engine: "a-1", url: "http://127.0.0.1:8002" },
        ],
        b: [{ engine: "b-0", url: "http://[::1]:9000" }],
      },
    );
  });
  it("rejects bad --backends with a UserError", () => {
    for (const bad of ["", "a", "a=", "=http://x:1", "a=https://x:1", "a=http://x", "a=notaurl"])
      assert.throws(() => parseBackendsFlag(bad), UserError, bad);
  });
  it("builds from a plan, mapping engine names to launcher URLs", () => {
    const rp: RouterPlan = {
      policy: "least-busy",
      port: 8000,
      image: "x",
      pollIntervalMs: 50,
      options: DEFAULT_POLICY_OPTIONS,
      backends: {
        m: [
          { engine: "m-0", host: "m-0", port: 8000 },
          { engine: "m-1", host: "m-1", port: 8000 },
        ],
      },
      requestTimeoutMs: 30_000,
    };
    const c = routerConfigFromPlan(rp, {
      engineUrls: { "m-1": "http://127.0.0.1:41234" },
      port: 0,
    });
    assert.equal(c.port, 0);
    assert.deepEqual(c.backends.m, [
      { engine: "m-0", url: "http://m-0:8000" },
      { engine: "m-1", url: "http://127.0.0.1:41234" },
    ]);
    assert.equal(c.requestTimeoutMs, 30_000);
  });
  it("keeps metrics alive for at least two poll intervals", () => {
    assert.equal(effectiveStaleMs(50, 200), 200);
    assert.equal(effectiveStaleMs(1000, 200), 2000);
  });
});
