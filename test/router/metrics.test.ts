import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { parsePrometheusText, sumSamples } from "../../lib/prometheus.ts";
import { REPLICA_METRICS, renderMetrics } from "../../services/router/metrics.ts";
import { Replica } from "../../services/router/replica.ts";
import { ADDED_LATENCY_BUCKETS, Counter, Histogram } from "../../services/router/stats.ts";

const poolOpts = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, keepAliveTimeoutMs: 1000 };
const a = new Replica("m", 0, { engine: "m-0", url: "http://127.0.0.1:9" }, poolOpts);
const b = new Replica("q", 0, { engine: "q-0", url: "http://127.0.0.1:9" }, poolOpts);
after(() => {
  a.pool.destroy();
  b.pool.destroy();
});

describe("renderMetrics", () => {
  it("renders every table row per replica, errors by kind, outcomes and the histogram", () => {
    Object.assign(a, { inFlight: 2, requests: 7, picks: 6, retries: 1, ejections: 3 });
    a.metrics = { running: 1, waiting: 0, kvUsage: undefined };
    a.metricsAt = 1000;
    b.healthy = false;
    a.errors.inc("connect", 2);
    b.errors.inc("poll_error");
    const outcomes = new Counter();
    outcomes.inc("ok", 5);
    outcomes.inc("too_large");
    const added = new Histogram(ADDED_LATENCY_BUCKETS);
    added.observe(0.0002);
    added.observe(0.02);
    const text = renderMetrics({ replicas: [a, b], outcomes, added, staleMs: 200 }, 1100);
    const { samples, types } = parsePrometheusText(text);
    const v = (name: string, backend: string) => sumSamples(samples, name, { backend });
    const expect: Record<string, [number, number]> = {
      inferbench_router_backend_in_flight: [2, 0],
      inferbench_router_backend_requests_total: [7, 0],
      inferbench_router_backend_picks_total: [6, 0],
      inferbench_router_backend_retries_total: [1, 0],
      inferbench_router_backend_ejections_total: [3, 0],
      inferbench_router_backend_healthy: [1, 0],
      inferbench_router_backend_metrics_fresh: [1, 0],
    };
    assert.deepEqual(
      REPLICA_METRICS.map((m) => m.name),
      Object.keys(expect),
    );
    for (const [name, [va, vb]] of Object.entries(expect)) {
      assert.equal(v(name, "m-0"), va, name);
      assert.equal(v(name, "q-0"), vb, name);
      assert.equal(types.get(name), name.endsWith("_total") ? "counter" : "gauge");
    }
    const err = samples.filter((s) => s.name === "inferbench_router_backend_errors_total");
    assert.deepEqual(
      err.map((s) => [s.labels, s.value]),
      [
        [{ backend: "m-0", model: "m", kind: "connect" }, 2],
        [{ backend: "q-0", model: "q", kind: "poll_error" }, 1],
      ],
    );
    assert.equal(sumSamples(samples, "inferbench_router_requests_total", { outcome: "ok" }), 5);
    assert.equal(
      sumSamples(samples, "inferbench_router_requests_total", { outcome: "too_large" }),
      1,
    );
    assert.equal(sumSamples(samples, "inferbench_router_added_latency_seconds_count"), 2);
    assert.equal(
      sumSamples(samples, "inferbench_router_added_latency_seconds_bucket", { le: "0.00025" }),
      1,
    );
    // Metrics older than staleMs read as not fresh.
    const later = parsePrometheusText(
      renderMetrics({ replicas: [a, b], outcomes, added, staleMs: 200 }, 1201),
    ).samples;
    assert.equal(
      sumSamples(later, "inferbench_router_backend_metrics_fresh", { backend: "m-0" }),
      0,
    );
  });
});
