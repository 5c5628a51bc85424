/**
 * The router: a streaming OpenAI-compatible reverse proxy. Routes each POST /v1/* by its body's
 * `model` to one of that model's replicas (policy in policies.ts), streams the upstream response
 * through chunk by chunk (bytes untouched), and keeps per-replica state that the policies read.
 *
 * Failure handling: connect errors and timeouts eject a replica (its /health is probed every poll
 * interval until it answers 200); a request that never reached a replica is retried once on
 * another; one whose response has started is never retried; a client disconnect destroys the
 * upstream request. Every outcome is counted in /metrics.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { errorMessage } from "../../lib/errors.ts";
import { createLogger, type Logger } from "../../lib/logger.ts";
import type { MetricFamily } from "../../lib/prometheus.ts";
import type { RouterPolicy } from "../../stacks/plan-types.ts";
import {
  type BackendConfig,
  DEFAULTS,
  effectiveStaleMs,
  MIN_POLL_INTERVAL_MS,
  type RouterConfig,
} from "./config.ts";
import {
  buildHashRing,
  type HashRing,
  pickKvAware,
  pickLeastBusy,
  pickPrefixAware,
  pickRoundRobin,
  pickSession,
  type ReplicaView,
  ringOwner,
} from "./policies.ts";
import { blockHashes, PrefixIndex, promptText } from "./prefix.ts";
import { ADDED_LATENCY_BUCKETS, Counter, formatPrometheusText, Histogram } from "./stats.ts";
import { UpstreamPool, type UpstreamPoolOptions, type UpstreamRequest } from "./upstream.ts";
import { parseVllmLoad, type ReplicaLoad } from "./vllm-metrics.ts";

export interface RunningRouter {
  port: number;
  url: string;
  close(): Promise<void>;
  /** Per-replica state for tests and the launcher. */
  replicas(): ReplicaState[];
}

export interface ReplicaState {
  model: string;
  engine: string;
  url: string;
  healthy: boolean;
  inFlight: number;
  metrics: ReplicaLoad | undefined;
  metricsAgeMs: number | undefined;
}

class Replica {
  readonly host: string;
  readonly port: number;
  healthy = true;
  metrics: ReplicaLoad | undefined;
  metricsAt = 0;
  dispatchedSincePoll = 0;
  completedSincePoll = 0;
  inFlight = 0;
  polling = false;
  warnedMissing = false;
  requests = 0;
  picks = 0;
  retries = 0;
  ejections = 0;
  readonly errors = new Counter();
  readonly pool: UpstreamPool;
  constructor(
    readonly model: string,
    readonly index: number,
    readonly cfg: BackendConfig,
    poolOpts: UpstreamPoolOptions,
  ) {
    const u = new URL(cfg.url);
    this.host = u.hostname.replace(/^\[|\]$/g, "");
    this.port = Number(u.port);
    this.pool = new UpstreamPool(this.host, this.port, poolOpts);
  }
}

interface ModelGroup {
  name: string;
  replicas: Replica[];
  rrCursor: number;
  ring: HashRing;
  prefix: PrefixIndex;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "proxy-authorization",
  "proxy-authenticate",
  "x-inferbench-backend",
]);

/** Errors that mean the request never reached the replica (safe to retry elsewhere). */
const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
]);

export type UpstreamFailure = "connect" | "connect_timeout" | "timeout" | "reset";

/**
 * Classifies an upstream error that happened before any response header (undici and Node error
 * codes). `neverReached`: the request cannot have reached the replica, so it is safe to retry on
 * another one. Pure, exported for tests.
 */
export function classifyUpstreamError(code: string | undefined): {
  kind: UpstreamFailure;
  neverReached: boolean;
  eject: boolean;
} {
  if (code === "UND_ERR_CONNECT_TIMEOUT")
    return { kind: "connect_timeout", neverReached: true, eject: true };
  if (code === "UND_ERR_HEADERS_TIMEOUT")
    return { kind: "timeout", neverReached: false, eject: true };
  if (code !== undefined && CONNECT_CODES.has(code))
    return { kind: "connect", neverReached: true, eject: true };
  // Socket closed or reset after the request may have been written: not retried.
  return { kind: "reset", neverReached: false, eject: true };
}

export function openAiError(message: string, type: string, code: string | null = null): string {
  return JSON.stringify({ error: { message, type, param: null, code } });
}

function tokenDigest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

function needsLoad(policy: RouterPolicy): boolean {
  return policy !== "round-robin";
}

function usesPrefix(policy: RouterPolicy): boolean {
  return policy === "prefix-aware" || policy === "kv-aware";
}

export async function startRouter(config: RouterConfig): Promise<RunningRouter> {
  const log: Logger = config.logger ?? createLogger("router");
  const rng = config.rng ?? Math.random;
  const policy = config.policy;
  const opts = config.options;
  const pollIntervalMs = Math.max(MIN_POLL_INTERVAL_MS, config.pollIntervalMs);
  const staleMs = effectiveStaleMs(pollIntervalMs, opts.metricsStaleMs);
  if (staleMs !== opts.metricsStaleMs)
    log.warn(
      `metricsStaleMs ${opts.metricsStaleMs} < 2 × pollIntervalMs ${pollIntervalMs}: using ${staleMs} ms`,
    );
  const requestTimeoutMs = config.requestTimeoutMs;
  const connectTimeoutMs = Math.min(config.connectTimeoutMs ?? 5000, requestTimeoutMs);
  const maxBody = config.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
  const apiKeyDigest = config.apiKey ? tokenDigest(config.apiKey) : undefined;
  const sessionHeader = opts.sessionHeader.toLowerCase();

  // Keep-alive pool per replica (upstream.ts; ~1.4x undici's throughput here, which was itself
  // ~1.3-1.6x node:http's Agent). Unlimited connections; idle sockets close before a typical
  // upstream keep-alive (uvicorn: 5 s); no body timeout (streams may idle between tokens).
  const poolOpts: UpstreamPoolOptions = {
    connectTimeoutMs,
    headersTimeoutMs: requestTimeoutMs,
    keepAliveTimeoutMs: 4000,
  };
  const groups = new Map<string, ModelGroup>();
  const all: Replica[] = [];
  for (const [model, list] of Object.entries(config.backends)) {
    const replicas = list.map((b, i) => new Replica(model, i, b, poolOpts));
    all.push(...replicas);
    groups.set(model, {
      name: model,
      replicas,
      rrCursor: 0,
      ring: buildHashRing(list.map((b) => b.engine)),
      prefix: new PrefixIndex(),
    });
  }
  const modelNames = [...groups.keys()];
  const createdAt = Math.floor(Date.now() / 1000);

  const pollAgent = new http.Agent({ keepAlive: true, maxSockets: 2, timeout: 4000 });

  const outcomes = new Counter();
  const added = new Histogram(ADDED_LATENCY_BUCKETS);

  const eject = (r: Replica, why: string) => {
    if (!r.healthy) return;
    r.healthy = false;
    r.ejections++;
    r.metrics = undefined;
    log.warn(`ejected ${r.cfg.engine} (${r.model}): ${why}`);
  };

  // ---- polling: /metrics of healthy replicas (load policies) or /health (round-robin, ejected) --
  const pollTimeoutMs = Math.max(1000, 2 * pollIntervalMs);
  const pollOne = (r: Replica) => {
    if (r.polling) return;
    r.polling = true;
    const probeHealth = !r.healthy || !needsLoad(policy);
    const path = probeHealth ? "/health" : "/metrics";
    const dispatchedAtStart = r.dispatchedSincePoll;
    const completedAtStart = r.completedSincePoll;
    let done = false;
    const finish = () => {
      done = true;
      r.polling = false;
    };
    const req = http.get(
      { host: r.host, port: r.port, path, agent: pollAgent, timeout: pollTimeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", () => finish());
        res.on("end", () => {
          if (done) return;
          finish();
          const ok = res.statusCode === 200;
          if (probeHealth) {
            if (ok && !r.healthy) {
              r.healthy = true;
              r.dispatchedSincePoll = 0;
              r.completedSincePoll = 0;
              log.info(`readmitted ${r.cfg.engine} (${r.model}): /health 200`);
            } else if (!ok && r.healthy) eject(r, `/health ${res.statusCode}`);
            return;
          }
          if (!ok) {
            r.errors.inc("metrics_http");
            r.metrics = undefined;
            return;
          }
          let load: ReplicaLoad | undefined;
          try {
            load = parseVllmLoad(Buffer.concat(chunks).toString("utf8"));
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
              log.warn(
                `${r.cfg.engine} /metrics has no vllm:num_requests_running/waiting: load unknown`,
              );
            r.warnedMissing = true;
            r.metrics = undefined;
            return;
          }
          r.metrics = load;
          r.metricsAt = performance.now();
          // The page counts what was outstanding when the poll began; what the router sent or saw
          // finish since then is still to be applied on top of it.
          r.dispatchedSincePoll = Math.max(0, r.dispatchedSincePoll - dispatchedAtStart);
          r.completedSincePoll = Math.max(0, r.completedSincePoll - completedAtStart);
        });
      },
    );
    req.on("timeout", () => {
      if (done) return;
      r.errors.inc("poll_timeout");
      req.destroy();
      finish();
      if (r.healthy) eject(r, `${path} timed out after ${pollTimeoutMs} ms`);
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (done) return;
      finish();
      r.errors.inc("poll_error");
      if (r.healthy) eject(r, `${path}: ${err.code ?? err.message}`);
    });
  };
  const pollAll = () => {
    for (const r of all) pollOne(r);
  };
  pollAll();
  const pollTimer = setInterval(pollAll, pollIntervalMs);
  pollTimer.unref();

  // ---- choosing -------------------------------------------------------------------------------
  const views = (g: ModelGroup, excluded: number, now: number): ReplicaView[] =>
    g.replicas.map((r) => ({
      index: r.index,
      healthy: r.healthy && r.index !== excluded,
      metrics: r.metrics && now - r.metricsAt <= staleMs ? r.metrics : undefined,
      dispatchedSincePoll: r.dispatchedSincePoll,
      completedSincePoll: r.completedSincePoll,
      inFlight: r.inFlight,
    }));

  const choose = (
    g: ModelGroup,
    body: Record<string, unknown>,
    headers: http.IncomingHttpHeaders,
    excluded: number,
    hashes: number[] | undefined,
  ): number => {
    if (policy === "round-robin") {
      // Only `healthy` matters here: the replicas themselves serve as views unless one is excluded
      // (retry), which saves building a snapshot per request.
      const v = excluded < 0 ? g.replicas : views(g, excluded, 0);
      const { pick, cursor } = pickRoundRobin(v, g.rrCursor);
      g.rrCursor = cursor;
      return pick;
    }
    const v = views(g, excluded, performance.now());
    switch (policy) {
      case "least-busy":
        return pickLeastBusy(v, rng);
      case "prefix-aware":
        return pickPrefixAware(
          v,
          g.prefix.match(hashes ?? [], v.length),
          hashes?.length ?? 0,
          { loadGateThreshold: opts.loadGateThreshold },
          rng,
        ).pick;
      case "kv-aware":
        return pickKvAware(
          v,
          g.prefix.match(hashes ?? [], v.length),
          hashes?.length ?? 0,
          opts.kvAwareWeights,
          rng,
        );
      case "session": {
        const h = headers[sessionHeader];
        const key =
          typeof h === "string" && h !== ""
            ? h
            : typeof body.user === "string" && body.user !== ""
              ? body.user
              : undefined;
        const owner = key === undefined ? -1 : ringOwner(g.ring, key, (i) => v[i]!.healthy);
        return pickSession(v, owner, { loadGateThreshold: opts.loadGateThreshold }, rng).pick;
      }
    }
  };

  // ---- request handling -----------------------------------------------------------------------
  const sendJson = (
    res: http.ServerResponse,
    status: number,
    body: string,
    outcome: string,
    extra: Record<string, string> = {},
  ) => {
    outcomes.inc(outcome);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      ...extra,
    });
    res.end(body);
  };

  const authorized = (req: http.IncomingMessage): boolean => {
    if (!apiKeyDigest) return true;
    const h = req.headers.authorization;
    if (typeof h !== "string" || !h.startsWith("Bearer ")) return false;
    return timingSafeEqual(tokenDigest(h.slice(7)), apiKeyDigest);
  };

  const proxy = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    g: ModelGroup,
    body: Buffer,
    parsed: Record<string, unknown>,
    tBody: number,
    hashes: number[] | undefined,
    attempt: number,
    excluded: number,
  ) => {
    const pick = choose(g, parsed, req.headers, excluded, hashes);
    if (pick < 0) {
      sendJson(
        res,
        503,
        openAiError(`no healthy replica for model "${g.name}"`, "service_unavailable"),
        "no_replica",
        { "retry-after": "1" },
      );
      return;
    }
    const r = g.replicas[pick]!;
    r.picks++;
    r.requests++;
    r.inFlight++;
    r.dispatchedSincePoll++;
    if (hashes && usesPrefix(policy)) g.prefix.record(hashes, pick);

    // Request head for the replica: the client's headers minus hop-by-hop ones and those the pool
    // sets (host, content-length). Node's parser already rejected CR/LF in names and values.
    const raw = req.rawHeaders;
    let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!.toLowerCase();
      if (HOP_BY_HOP.has(k) || k === "host" || k === "content-length" || k === "expect") continue;
      if (k === "authorization" && apiKeyDigest) continue; // the router's key is not the engine's
      head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }

    let up: UpstreamRequest | undefined;
    let responded = false;
    let settled = false;
    let status = 0;
    const settle = () => {
      if (settled) return false;
      settled = true;
      r.inFlight--;
      r.completedSincePoll++;
      return true;
    };
    const onClientClose = () => {
      if (settled || res.writableFinished) return;
      // Client went away before the response ended: cancel the upstream request.
      r.errors.inc("client_disconnect");
      outcomes.inc("client_disconnect");
      settle();
      up?.abort();
    };
    res.on("close", onClientClose);
    const onDrain = () => up?.resume();
    let corked = false;
    const uncork = () => {
      corked = false;
      res.uncork();
    };

    const tDispatch = performance.now();
    up = r.pool.request(head, body, {
      onResponseStart(statusCode, upHeaders, lower) {
        responded = true;
        status = statusCode;
        const tResp = performance.now();
        const out: string[] = [];
        for (let i = 0; i < lower.length; i++)
          if (!HOP_BY_HOP.has(lower[i]!)) out.push(upHeaders[2 * i]!, upHeaders[2 * i + 1]!);
        out.push("x-inferbench-backend", r.cfg.engine);
        try {
          res.writeHead(statusCode, out);
        } catch (err) {
          // A header Node refuses to send (invalid characters): the response cannot be relayed.
          log.warn(`${r.cfg.engine}: unrelayable response head: ${errorMessage(err)}`);
          up?.abort();
          if (!settle()) return;
          r.errors.inc("stream_error");
          outcomes.inc("stream_error");
          res.destroy();
          return;
        }
        added.observe((tDispatch - tBody + performance.now() - tResp) / 1000);
      },
      onData(chunk) {
        // Bytes go out as they came, in this same tick: chunks parsed from one read are corked
        // into one writev (fewer syscalls, no added delay). Pause the replica while the client
        // is slow.
        if (!corked) {
          corked = true;
          res.cork();
          process.nextTick(uncork);
        }
        if (!res.write(chunk)) {
          res.once("drain", onDrain);
          return false;
        }
        return true;
      },
      onEnd() {
        if (!settle()) return;
        res.off("close", onClientClose);
        res.end();
        if (status >= 500) r.errors.inc("http_5xx");
        outcomes.inc(status < 400 ? "ok" : status < 500 ? "upstream_4xx" : "upstream_5xx");
      },
      onError(err) {
        if (!settle()) return;
        if (responded) {
          // Broken mid-stream: never retried (tokens already went out); cut the client off too.
          r.errors.inc("stream_error");
          outcomes.inc("stream_error");
          res.destroy();
          return;
        }
        const c = classifyUpstreamError(err.code);
        r.errors.inc(c.kind);
        if (c.eject) eject(r, `${c.kind}${err.code ? ` ${err.code}` : ""}`);
        if (res.destroyed || res.writableEnded) return;
        if (c.neverReached && attempt === 0 && g.replicas.length > 1) {
          r.retries++;
          outcomes.inc("retried");
          res.off("close", onClientClose);
          proxy(req, res, g, body, parsed, tBody, hashes, 1, pick);
          return;
        }
        if (c.kind === "timeout" || c.kind === "connect_timeout")
          sendJson(
            res,
            504,
            openAiError(`replica ${r.cfg.engine} timed out`, "timeout"),
            "timeout",
          );
        else
          sendJson(
            res,
            502,
            openAiError(`replica ${r.cfg.engine} failed: ${c.kind}`, "bad_gateway"),
            "upstream_error",
          );
      },
    });
  };

  const handleApi = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > maxBody) {
      res.setHeader("connection", "close");
      sendJson(
        res,
        413,
        openAiError(`request body exceeds ${maxBody} bytes`, "invalid_request_error"),
        "too_large",
      );
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let aborted = false;
    req.on("data", (c: Buffer) => {
      if (aborted) return;
      size += c.length;
      if (size > maxBody) {
        aborted = true;
        res.setHeader("connection", "close");
        sendJson(
          res,
          413,
          openAiError(`request body exceeds ${maxBody} bytes`, "invalid_request_error"),
          "too_large",
        );
        return;
      }
      chunks.push(c);
    });
    req.on("error", () => {
      aborted = true;
    });
    req.on("end", () => {
      if (aborted) return;
      const tBody = performance.now();
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString("utf8"));
      } catch (err) {
        sendJson(
          res,
          400,
          openAiError(`invalid JSON body: ${errorMessage(err)}`, "invalid_request_error"),
          "bad_request",
        );
        return;
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        sendJson(
          res,
          400,
          openAiError("request body must be a JSON object", "invalid_request_error"),
          "bad_request",
        );
        return;
      }
      const obj = parsed as Record<string, unknown>;
      const model = obj.model;
      if (typeof model !== "string" || model === "") {
        sendJson(
          res,
          400,
          openAiError("missing `model` (string)", "invalid_request_error", "missing_model"),
          "bad_request",
        );
        return;
      }
      const g = groups.get(model);
      if (!g) {
        sendJson(
          res,
          404,
          openAiError(
            `The model \`${model}\` does not exist. Served models: ${modelNames.join(", ")}`,
            "invalid_request_error",
            "model_not_found",
          ),
          "unknown_model",
        );
        return;
      }
      const hashes = usesPrefix(policy)
        ? blockHashes(promptText(obj), opts.prefixBlockChars, model)
        : undefined;
      proxy(req, res, g, body, obj, tBody, hashes, 0, -1);
    });
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    try {
      const q = req.url?.indexOf("?") ?? -1;
      const path = q >= 0 ? req.url!.slice(0, q) : (req.url ?? "/");
      if (req.method === "GET" && path === "/health") {
        const healthy = all.filter((r) => r.healthy).length;
        sendJson(
          res,
          200,
          JSON.stringify({ status: "ok", replicas: all.length, healthy }),
          "health",
        );
        return;
      }
      if (req.method === "GET" && path === "/metrics") {
        const text = renderMetrics();
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
        res.end(text);
        return;
      }
      if (!authorized(req)) {
        req.resume();
        sendJson(
          res,
          401,
          openAiError("missing or invalid API key", "invalid_request_error", "invalid_api_key"),
          "unauthorized",
        );
        return;
      }
      if (req.method === "GET" && path === "/v1/models") {
        sendJson(
          res,
          200,
          JSON.stringify({
            object: "list",
            data: modelNames.map((id) => ({
              id,
              object: "model",
              created: createdAt,
              owned_by: "inferbench-router",
            })),
          }),
          "models",
        );
        return;
      }
      if (req.method === "POST" && path.startsWith("/v1/")) {
        handleApi(req, res);
        return;
      }
      req.resume();
      sendJson(
        res,
        404,
        openAiError(`no route for ${req.method} ${path}`, "invalid_request_error"),
        "not_found",
      );
    } catch (err) {
      log.error(`request handler: ${errorMessage(err)}`);
      sendJson(res, 500, openAiError("router internal error", "internal_error"), "internal");
    }
  };

  const renderMetrics = (): string => {
    const now = performance.now();
    const fam = (
      name: string,
      help: string,
      type: MetricFamily["type"],
      f: (r: Replica) => number,
    ): MetricFamily => ({
      name,
      help,
      type,
      samples: all.map((r) => ({ labels: { backend: r.cfg.engine, model: r.model }, value: f(r) })),
    });
    const errorSamples: MetricFamily["samples"] = [];
    for (const r of all)
      for (const [kind, v] of r.errors.entries())
        errorSamples.push({ labels: { backend: r.cfg.engine, model: r.model, kind }, value: v });
    return formatPrometheusText([
      fam(
        "inferbench_router_backend_in_flight",
        "Requests in flight to the replica.",
        "gauge",
        (r) => r.inFlight,
      ),
      fam(
        "inferbench_router_backend_requests_total",
        "Requests dispatched to the replica (attempts).",
        "counter",
        (r) => r.requests,
      ),
      fam(
        "inferbench_router_backend_picks_total",
        "Times the policy picked the replica.",
        "counter",
        (r) => r.picks,
      ),
      fam(
        "inferbench_router_backend_retries_total",
        "Requests retried elsewhere after never reaching the replica.",
        "counter",
        (r) => r.retries,
      ),
      fam(
        "inferbench_router_backend_ejections_total",
        "Times the replica was ejected.",
        "counter",
        (r) => r.ejections,
      ),
      fam(
        "inferbench_router_backend_healthy",
        "1 when the replica is in rotation.",
        "gauge",
        (r) => (r.healthy ? 1 : 0),
      ),
      fam(
        "inferbench_router_backend_metrics_fresh",
        "1 when the replica's polled load is fresh (else unknown).",
        "gauge",
        (r) => (r.metrics && now - r.metricsAt <= staleMs ? 1 : 0),
      ),
      {
        name: "inferbench_router_backend_errors_total",
        help: "Errors by kind (connect, connect_timeout, timeout, reset, stale_socket, stream_error, http_5xx, client_disconnect, poll_*, metrics_*).",
        type: "counter",
        samples: errorSamples,
      },
      {
        name: "inferbench_router_requests_total",
        help: "Client-facing outcomes.",
        type: "counter",
        samples: outcomes.entries().map(([outcome, v]) => ({ labels: { outcome }, value: v })),
      },
      added.family(
        "inferbench_router_added_latency_seconds",
        "Time the router adds: body received → upstream dispatch, plus upstream headers → client headers.",
      ),
    ]);
  };

  const server = http.createServer({ keepAliveTimeout: 65_000, noDelay: true }, handler);
  server.headersTimeout = 66_000;
  server.requestTimeout = 0; // long streams are the norm; request-body time is bounded by maxBody
  server.on("clientError", (_err, socket) => {
    outcomes.inc("client_error");
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: config.port, host: config.host ?? "0.0.0.0", backlog: 4096 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host ?? "0.0.0.0";
  log.info(
    `listening on ${host}:${port}, policy ${policy}, ${all.length} replicas of ${modelNames.length} models, poll ${pollIntervalMs} ms`,
  );

  return {
    port,
    url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}`,
    replicas: () =>
      all.map((r) => ({
        model: r.model,
        engine: r.cfg.engine,
        url: r.cfg.url,
        healthy: r.healthy,
        inFlight: r.inFlight,
        metrics: r.metrics,
        metricsAgeMs: r.metrics ? performance.now() - r.metricsAt : undefined,
      })),
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(pollTimer);
        server.close(() => resolve());
        server.closeAllConnections();
        pollAgent.destroy();
        for (const r of all) r.pool.destroy();
      }),
  };
}
