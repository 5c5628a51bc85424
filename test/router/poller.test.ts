import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { createLogger } from "../../lib/logger.ts";
import { applyHealthProbe, applyMetricsPage, startPoller } from "../../services/router/poller.ts";
import { Replica } from "../../services/router/replica.ts";

const lines: string[] = [];
const log = createLogger("test", (l) => lines.push(l));
const poolOpts = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, keepAliveTimeoutMs: 1000 };
const replicas: Replica[] = [];
after(() => {
  for (const r of replicas) r.pool.destroy();
});
function replica(url = "http://127.0.0.1:9", engine = "e0"): Replica {
  const r = new Replica("m", replicas.length, { engine, url }, poolOpts);
  replicas.push(r);
  return r;
}

const PAGE =
  'vllm:num_requests_running{model_name="m"} 3\nvllm:num_requests_waiting{model_name="m"} 2\nvllm:kv_cache_usage_perc{model_name="m"} 0.25\n';

describe("applyMetricsPage", () => {
  it("stores the load and keeps only the dispatches/completions made since the poll began", () => {
    const r = replica();
    r.dispatchedSincePoll = 5;
    r.completedSincePoll = 1;
    applyMetricsPage(r, 200, PAGE, { dispatched: 3, completed: 1 }, 1234, log);
    assert.deepEqual(r.metrics, { running: 3, waiting: 2, kvUsage: 0.25 });
    assert.equal(r.metricsAt, 1234);
    assert.equal(r.dispatchedSincePoll, 2);
    assert.equal(r.completedSincePoll, 0);
  });

  it("leaves the load unknown on a failed, unparsable or gauge-less page, counted, warned once", () => {
    const r = replica();
    r.metrics = { running: 1, waiting: 0, kvUsage: undefined };
    applyMetricsPage(r, 500, PAGE, { dispatched: 0, completed: 0 }, 1, log);
    assert.equal(r.metrics, undefined);
    assert.equal(r.errors.get("metrics_http"), 1);
    const before = lines.length;
    applyMetricsPage(
      r,
      200,
      "process_cpu_seconds_total 1\n",
      { dispatched: 0, completed: 0 },
      1,
      log,
    );
    applyMetricsPage(r, 200, "# nothing\n", { dispatched: 0, completed: 0 }, 1, log);
    assert.equal(r.errors.get("metrics_missing"), 2);
    applyMetricsPage(r, 200, "bad{ line", { dispatched: 0, completed: 0 }, 1, log);
    assert.equal(r.errors.get("metrics_parse"), 1);
    assert.equal(lines.length - before, 1, "warned once");
    assert.equal(r.metrics, undefined);
  });
});

describe("applyHealthProbe", () => {
  it("ejects a healthy replica on a non-200 and readmits it on 200 with fresh counters", () => {
    const r = replica();
    r.metrics = { running: 1, waiting: 0, kvUsage: undefined };
    applyHealthProbe(r, 503, log);
    assert.equal(r.healthy, false);
    assert.equal(r.ejections, 1);
    assert.equal(r.metrics, undefined);
    applyHealthProbe(r, 502, log);
    assert.equal(r.ejections, 1, "already out");
    assert.equal(r.lastProblem, "/health 502", "the latest reason is kept while ejected");
    r.dispatchedSincePoll = 4;
    applyHealthProbe(r, 200, log);
    assert.equal(r.healthy, true);
    assert.equal(r.lastProblem, undefined);
    assert.equal(r.dispatchedSincePoll, 0);
  });
});

/** A replica stand-in whose /health and /metrics answers the test sets. */
async function fakeReplica() {
  const state = { health: 200, metricsDelayMs: 0, paths: [] as string[] };
  const server = http.createServer((req, res) => {
    state.paths.push(req.url ?? "");
    if (req.url === "/health") {
      res.statusCode = state.health;
      res.end("ok");
    } else setTimeout(() => res.end(PAGE), state.metricsDelayMs);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { state, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 5000) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("startPoller", () => {
  it("polls /metrics for load policies and /health otherwise", async () => {
    const f = await fakeReplica();
    const load = replica(f.url);
    const p = startPoller([load], { readLoad: true, intervalMs: 50, log });
    await until(() => load.metrics !== undefined, "metrics");
    p.stop();
    assert.deepEqual(load.metrics, { running: 3, waiting: 2, kvUsage: 0.25 });
    assert.ok(
      f.state.paths.every((x) => x === "/metrics"),
      f.state.paths.join(),
    );
    const g = await fakeReplica();
    const rr = replica(g.url);
    const p2 = startPoller([rr], { readLoad: false, intervalMs: 50, log });
    await until(() => g.state.paths.length >= 2, "two polls");
    p2.stop();
    assert.ok(g.state.paths.every((x) => x === "/health"));
    assert.equal(rr.metrics, undefined);
  });

  it("ejects a replica that refuses connections and readmits it once /health answers 200", async () => {
    const f = await fakeReplica();
    const r = replica(f.url);
    const dead = replica("http://127.0.0.1:1", "dead");
    f.state.health = 503;
    const p = startPoller([r, dead], { readLoad: false, intervalMs: 50, log });
    await until(() => !r.healthy && !dead.healthy, "both ejected");
    assert.ok((dead.errors.get("poll_error") ?? 0) >= 1);
    f.state.health = 200;
    await until(() => r.healthy, "readmission");
    p.stop();
    assert.equal(dead.healthy, false);
  });

  it("ejects a replica whose /metrics does not answer within max(1 s, 2 intervals)", async () => {
    const f = await fakeReplica();
    f.state.metricsDelayMs = 5000;
    const r = replica(f.url);
    const t0 = Date.now();
    const p = startPoller([r], { readLoad: true, intervalMs: 50, log });
    // Its /health answers, so it may be readmitted at once: watch the ejection count.
    await until(() => r.ejections >= 1, "timeout ejection");
    p.stop();
    const took = Date.now() - t0;
    assert.ok(took >= 950 && took < 3000, `ejected after ${took} ms`);
    assert.equal(r.errors.get("poll_timeout"), 1);
  });
});
