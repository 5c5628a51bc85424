/**
 * Replica poller: every interval, each healthy replica's /metrics (load policies) or /health
 * (round-robin, which needs no load), and /health of ejected replicas until one answers 200.
 * A poll that cannot connect or times out ejects the replica. One poll per replica at a time.
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { ejectReplica, type Replica } from "./replica.ts";
import { parseVllmLoad, type ReplicaLoad } from "./vllm-metrics.ts";

export interface PollerOptions {
  /** Poll /metrics of healthy replicas (load policies); else /health only. */
  readLoad: boolean;
  intervalMs: number;
  log: Logger;
}

export interface Poller {
  /** Polls every replica now (a replica whose poll is still out is skipped). */
  pollAll(): void;
  stop(): void;
}

/** Outcome of a /health probe: readmits an ejected replica on 200, ejects a healthy one otherwise. */
export function applyHealthProbe(r: Replica, status: number, log: Logger): void {
  const ok = status === 200;
  if (ok && !r.healthy) {
    r.healthy = true;
    r.lastProblem = undefined;
    r.dispatchedSincePoll = 0;
    r.completedSincePoll = 0;
    log.info(`readmitted ${r.cfg.engine} (${r.model}): /health 200`);
  } else if (!ok) ejectReplica(r, `/health ${status}`, log.warn); // already ejected: the reason only
}

/**
 * Outcome of a /metrics poll that began when the replica's counters read `atStart`. A page that
 * fails or lacks vLLM's queue gauges leaves the load unknown (counted, logged once), never zero.
 */
export function applyMetricsPage(
  r: Replica,
  status: number,
  text: string,
  atStart: { dispatched: number; completed: number },
  now: number,
  log: Logger,
): void {
  if (status !== 200) {
    r.errors.inc("metrics_http");
    r.metrics = undefined;
    return;
  }
  let load: ReplicaLoad | undefined;
  try {
    load = parseVllmLoad(text);
  } catch (err) {
    r.errors.inc("metrics_parse");
    if (!r.warnedMissing) log.warn(`${r.cfg.engine} /metrics: ${errorMessage(err)}`);
    r.warnedMissing = true;
    r.metrics = undefined;
    return;
  }
  if (!load) {
    r.errors.inc("metrics_missing");
    if (!r.warnedMissing)
      log.warn(`${r.cfg.engine} /metrics has no vllm:num_requests_running/waiting: load unknown`);
    r.warnedMissing = true;
    r.metrics = undefined;
    return;
  }
  r.metrics = load;
  r.metricsAt = now;
  // The page counts what was outstanding when the poll began; what the router sent or saw finish
  // since then is still to be applied on top of it.
  r.dispatchedSincePoll = Math.max(0, r.dispatchedSincePoll - atStart.dispatched);
  r.completedSincePoll = Math.max(0, r.completedSincePoll - atStart.completed);
}

export function startPoller(replicas: readonly Replica[], opts: PollerOptions): Poller {
  const { log } = opts;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2, timeout: 4000 });
  const timeoutMs = Math.max(1000, 2 * opts.intervalMs);

  const pollOne = (r: Replica) => {
    if (r.polling) return;
    r.polling = true;
    const probeHealth = !r.healthy || !opts.readLoad;
    const path = probeHealth ? "/health" : "/metrics";
    const atStart = { dispatched: r.dispatchedSincePoll, completed: r.completedSincePoll };
    let done = false;
    const finish = () => {
      done = true;
      r.polling = false;
    };
    const req = http.get({ host: r.host, port: r.port, path, agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", () => finish());
      res.on("end", () => {
        if (done) return;
        finish();
        const status = res.statusCode ?? 0;
        if (probeHealth) applyHealthProbe(r, status, log);
        else
          applyMetricsPage(
            r,
            status,
            Buffer.concat(chunks).toString("utf8"),
            atStart,
            performance.now(),
            log,
          );
      });
    });
    req.on("timeout", () => {
      if (done) return;
      r.errors.inc("poll_timeout");
      req.destroy();
      finish();
      ejectReplica(r, `${path} timed out after ${timeoutMs} ms`, log.warn);
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (done) return;
      finish();
      r.errors.inc("poll_error");
      ejectReplica(r, `${path}: ${err.code ?? err.message}`, log.warn);
    });
  };

  const pollAll = () => {
    for (const r of replicas) pollOne(r);
  };
  pollAll();
  const timer = setInterval(pollAll, opts.intervalMs);
  timer.unref();
  return {
    pollAll,
    stop: () => {
      clearInterval(timer);
      agent.destroy();
    },
  };
}
