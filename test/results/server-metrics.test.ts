import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  counterDeltas,
  type PointServerMetrics,
  serverView,
} from "../../results/server-metrics.ts";

const text = (
  running: number,
  queries: number,
  hits: number,
  preempt: number,
  kv: number,
  engine = "e0",
) =>
  [
    "# TYPE vllm:num_requests_running gauge",
    `vllm:num_requests_running{engine="${engine}"} ${running}`,
    "# TYPE vllm:kv_cache_usage_perc gauge",
    `vllm:kv_cache_usage_perc{engine="${engine}"} ${kv}`,
    "# TYPE vllm:prefix_cache_queries counter",
    `vllm:prefix_cache_queries_total{engine="${engine}"} ${queries}`,
    "# TYPE vllm:prefix_cache_hits counter",
    `vllm:prefix_cache_hits_total{engine="${engine}"} ${hits}`,
    "# TYPE vllm:num_preemptions counter",
    `vllm:num_preemptions_total{engine="${engine}"} ${preempt}`,
    "",
  ].join("\n");

describe("server metrics around a load point", () => {
  const m: PointServerMetrics = {
    before: {
      texts: { e0: text(0, 100, 10, 1, 0), e1: text(0, 0, 0, 0, 0, "e1") },
      errors: {},
      atMs: 0,
    },
    after: {
      texts: { e0: text(3, 300, 110, 4, 0.5), e1: text(1, 100, 0, 0, 0.2, "e1") },
      errors: {},
      atMs: 1000,
    },
    samples: [
      { tSec: 0, engines: { e0: { kvUsage: 0.2, waiting: 2 }, e1: { kvUsage: 0.1, waiting: 0 } } },
      {
        tSec: 0.25,
        engines: { e0: { kvUsage: 0.4, waiting: 4 }, e1: { kvUsage: 0.3, waiting: 0 } },
      },
    ],
  };

  it("counter deltas per endpoint, gauges left out", () => {
    const d = counterDeltas(m.before, m.after);
    assert.deepEqual(d.e0, {
      'vllm:prefix_cache_queries_total{engine="e0"}': 200,
      'vllm:prefix_cache_hits_total{engine="e0"}': 100,
      'vllm:num_preemptions_total{engine="e0"}': 3,
    });
  });

  it("server view: hit rate over the point, preemptions, KV usage and queue depth from samples", () => {
    const v = serverView(m, ["e0", "e1"]);
    assert.equal(v.prefixHitRate, 100 / 300);
    assert.equal(v.preemptions, 3);
    assert.equal(v.kvUsageMean, (0.2 + 0.1 + 0.4 + 0.3) / 4);
    assert.equal(v.kvUsageMax, 0.4);
    assert.equal(v.queueDepthMean, 6 / 4);
    assert.deepEqual(v.timeseries?.replicas.e0?.kvUsage, [0.2, 0.4]);
  });
});
