/**
 * The router: a streaming OpenAI-compatible reverse proxy. Routes each POST /v1/* by its body's
 * `model` to one of that model's replicas (choose.ts over policies.ts), streams the upstream
 * response through chunk by chunk, bytes untouched (proxy.ts), keeps per-replica state the poller
 * refreshes (poller.ts) and the policies read, and counts every outcome in /metrics (metrics.ts).
 *
 * This file is the front: settings, routes, request bodies, auth, listen and close.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { errorMessage } from "../../lib/errors.ts";
import { createLogger, type Logger } from "../../lib/logger.ts";
import { BodyBuffer } from "./body.ts";
import { policyReadsLoad, policyUsesPrefix } from "./choose.ts";
import { DEFAULTS, effectiveStaleMs, MIN_POLL_INTERVAL_MS, type RouterConfig } from "./config.ts";
import { type Deadline, Deadlines } from "./deadlines.ts";
import { renderMetrics } from "./metrics.ts";
import { INLINE_PARSE_MAX_BYTES, OffThreadParser } from "./parse-offthread.ts";
import { startPoller } from "./poller.ts";
import { type ProxyContext, proxyRequest } from "./proxy.ts";
import { buildGroups, type ModelGroup, type Replica } from "./replica.ts";
import {
  type ApiRejection,
  type ApiRequest,
  type ApiRequestRules,
  parseApiRequest,
} from "./request.ts";
import { clientErrorResponse, openAiError, sendJson } from "./respond.ts";
import { ADDED_LATENCY_BUCKETS, Counter, Histogram } from "./stats.ts";
import type { UpstreamPoolOptions } from "./upstream.ts";
import type { ReplicaLoad } from "./vllm-metrics.ts";

export { classifyUpstreamError, type UpstreamFailure } from "./proxy.ts";
export { openAiError } from "./respond.ts";

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

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

function tokenDigest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** Everything the request handler reads, built once at start-up. */
interface Front {
  log: Logger;
  groups: Map<string, ModelGroup>;
  all: Replica[];
  modelNames: string[];
  createdAt: number;
  maxBody: number;
  apiKeyDigest: Buffer | undefined;
  sessionHeader: string;
  rules: ApiRequestRules;
  proxy: ProxyContext;
  metrics: () => string;
  bodyDeadlines: Deadlines;
  parser: OffThreadParser;
}

/** Constant-time bearer check against the key's digest (the key itself is never kept around). */
function authorized(front: Front, req: http.IncomingMessage): boolean {
  if (!front.apiKeyDigest) return true;
  const h = req.headers.authorization;
  if (typeof h !== "string" || !h.startsWith("Bearer ")) return false;
  return timingSafeEqual(tokenDigest(h.slice(7)), front.apiKeyDigest);
}

/** Answers before the body was read: a keep-alive socket would otherwise keep reading it. */
function closeIfBodyPending(req: http.IncomingMessage, res: http.ServerResponse): void {
  const cl = req.headers["content-length"];
  if ((cl !== undefined && cl !== "0") || req.headers["transfer-encoding"] !== undefined)
    res.setHeader("connection", "close");
}

function tooLarge(front: Front, res: http.ServerResponse): void {
  res.setHeader("connection", "close");
  sendJson(
    res,
    front.proxy.outcomes,
    413,
    openAiError(
      `request body exceeds ${front.maxBody} bytes`,
      "invalid_request_error",
      "request_too_large",
    ),
    "too_large",
  );
}

interface BodyRead {
  done: boolean;
  deadline: Deadline | undefined;
}

function endBodyRead(front: Front, st: BodyRead): void {
  st.done = true;
  if (st.deadline) front.bodyDeadlines.delete(st.deadline);
}

/**
 * POST /v1/*: reads the body, bounded in size (413) and time (408), then parses it (inline, or
 * off the event loop when large) and hands it to the data path.
 */
function handleApi(front: Front, req: http.IncomingMessage, res: http.ServerResponse): void {
  const { maxBody } = front;
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBody) {
    tooLarge(front, res);
    return;
  }
  const body = new BodyBuffer(INLINE_PARSE_MAX_BYTES);
  // Closures here are unnamed arguments on purpose: tsx's keepNames wraps every named closure in
  // a defineProperty call, on every request.
  const st: BodyRead = { done: false, deadline: undefined };
  st.deadline = front.bodyDeadlines.add(() => {
    if (st.done) return;
    st.done = true;
    res.setHeader("connection", "close");
    sendJson(
      res,
      front.proxy.outcomes,
      408,
      openAiError(
        `request body not received within ${front.bodyDeadlines.ms} ms`,
        "invalid_request_error",
        "body_timeout",
      ),
      "body_timeout",
    );
  });
  req.on("data", (c: Buffer) => {
    if (st.done) return;
    if (body.size + c.length > maxBody) {
      endBodyRead(front, st);
      tooLarge(front, res);
      return;
    }
    const wasSpilled = body.spilled;
    body.push(c);
    // A large body will be parsed off-thread: start the worker while the rest arrives.
    if (body.spilled && !wasSpilled) front.parser.warm();
  });
  req.on("error", () => endBodyRead(front, st));
  req.on("close", () => {
    if (!st.done) front.proxy.outcomes.inc("client_disconnect");
    endBodyRead(front, st);
  });
  req.on("end", () => {
    if (st.done) return;
    endBodyRead(front, st);
    const tBody = performance.now();
    if (!body.spilled) {
      const whole = body.whole();
      dispatch(front, req, res, parseApiRequest(whole, front.rules), whole, tBody);
      return;
    }
    front.parser.parse(body.segmented(), front.rules).then(
      (p) => {
        if (res.destroyed) front.proxy.outcomes.inc("client_disconnect");
        else dispatch(front, req, res, p.result, p.body, tBody);
      },
      (err: unknown) => {
        front.log.error(`body parser: ${errorMessage(err)}`);
        sendJson(
          res,
          front.proxy.outcomes,
          500,
          openAiError("router internal error", "internal_error"),
          "internal",
        );
      },
    );
  });
}

/** A parsed body: rejected (400/404) or sent to the model's replicas. */
function dispatch(
  front: Front,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  api: ApiRequest | ApiRejection,
  body: Buffer,
  tBody: number,
): void {
  if (!api.ok) {
    sendJson(
      res,
      front.proxy.outcomes,
      api.status,
      openAiError(api.message, "invalid_request_error", api.code),
      api.outcome,
    );
    return;
  }
  const h = req.headers[front.sessionHeader];
  proxyRequest(front.proxy, {
    req,
    res,
    group: front.groups.get(api.model)!,
    body,
    sessionKey: typeof h === "string" && h !== "" ? h : api.user,
    hashes: api.hashes,
    tBody,
  });
}

function route(front: Front, req: http.IncomingMessage, res: http.ServerResponse): void {
  const outcomes = front.proxy.outcomes;
  const q = req.url?.indexOf("?") ?? -1;
  const path = q >= 0 ? req.url!.slice(0, q) : (req.url ?? "/");
  if (req.method === "GET" && path === "/health") {
    const healthy = front.all.filter((r) => r.healthy).length;
    if (healthy > 0)
      sendJson(
        res,
        outcomes,
        200,
        JSON.stringify({ status: "ok", replicas: front.all.length, healthy }),
        "health",
      );
    else
      sendJson(
        res,
        outcomes,
        503,
        openAiError(
          `no healthy replica (0 of ${front.all.length}): ${front.all
            .map((r) => `${r.cfg.engine}: ${r.lastProblem ?? "not probed yet"}`)
            .join("; ")}`,
          "service_unavailable",
          "no_healthy_replica",
        ),
        "health",
        { "retry-after": "1" },
      );
    return;
  }
  if (req.method === "GET" && path === "/metrics") {
    const text = front.metrics();
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(text);
    return;
  }
  if (!authorized(front, req)) {
    closeIfBodyPending(req, res);
    sendJson(
      res,
      outcomes,
      401,
      openAiError("missing or invalid API key", "invalid_request_error", "invalid_api_key"),
      "unauthorized",
    );
    return;
  }
  if (req.method === "GET" && path === "/v1/models") {
    const data = front.modelNames.map((id) => ({
      id,
      object: "model",
      created: front.createdAt,
      owned_by: "inferbench-router",
    }));
    sendJson(res, outcomes, 200, JSON.stringify({ object: "list", data }), "models");
    return;
  }
  if (req.method === "POST" && path.startsWith("/v1/")) {
    handleApi(front, req, res);
    return;
  }
  closeIfBodyPending(req, res);
  // A known endpoint asked with the wrong method is 405 with Allow, as vLLM's server answers.
  const allow = API_ROUTES.has(path) ? "POST" : undefined;
  sendJson(
    res,
    outcomes,
    allow ? 405 : 404,
    openAiError(
      allow
        ? `${req.method} not allowed on ${path} (use ${allow})`
        : `no route for ${req.method} ${path}`,
      "invalid_request_error",
    ),
    allow ? "method_not_allowed" : "not_found",
    allow ? { allow } : {},
  );
}

const API_ROUTES = new Set(["/v1/completions", "/v1/chat/completions"]);

/** Resolves the config into the handler's state; starts nothing. */
function buildFront(config: RouterConfig, log: Logger): Front & { pollIntervalMs: number } {
  const opts = config.options;
  const pollIntervalMs = Math.max(MIN_POLL_INTERVAL_MS, config.pollIntervalMs);
  const staleMs = effectiveStaleMs(pollIntervalMs, opts.metricsStaleMs);
  if (staleMs !== opts.metricsStaleMs)
    log.warn(
      `metricsStaleMs ${opts.metricsStaleMs} < 2 × pollIntervalMs ${pollIntervalMs}: using ${staleMs} ms`,
    );
  // Keep-alive pool per replica (upstream.ts; ~1.4x undici's throughput here, which was itself
  // ~1.3-1.6x node:http's Agent). Unlimited connections; idle sockets close before a typical
  // upstream keep-alive (uvicorn: 5 s); no body timeout (streams may idle between tokens).
  const poolOpts: UpstreamPoolOptions = {
    connectTimeoutMs: Math.min(config.connectTimeoutMs ?? 5000, config.requestTimeoutMs),
    headersTimeoutMs: config.requestTimeoutMs,
    keepAliveTimeoutMs: 4000,
  };
  const groups = buildGroups(config.backends, poolOpts);
  const all = [...groups.values()].flatMap((g) => g.replicas);
  const outcomes = new Counter();
  const added = new Histogram(ADDED_LATENCY_BUCKETS);
  const apiKeyDigest = config.apiKey ? tokenDigest(config.apiKey) : undefined;
  return {
    log,
    pollIntervalMs,
    groups,
    all,
    modelNames: [...groups.keys()],
    createdAt: Math.floor(Date.now() / 1000),
    maxBody: config.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    apiKeyDigest,
    sessionHeader: opts.sessionHeader.toLowerCase(),
    rules: {
      models: new Set(groups.keys()),
      hashPrefix: policyUsesPrefix(config.policy),
      prefixBlockChars: opts.prefixBlockChars,
    },
    proxy: {
      policy: config.policy,
      options: opts,
      rng: config.rng ?? Math.random,
      staleMs,
      stripAuthorization: apiKeyDigest !== undefined,
      log,
      outcomes,
      added,
    },
    metrics: () => renderMetrics({ replicas: all, outcomes, added, staleMs }, performance.now()),
    bodyDeadlines: new Deadlines(config.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs),
    parser: new OffThreadParser(),
  };
}

export async function startRouter(config: RouterConfig): Promise<RunningRouter> {
  const log: Logger = config.logger ?? createLogger("router");
  const front = buildFront(config, log);
  const { all } = front;
  const poller = startPoller(all, {
    readLoad: policyReadsLoad(config.policy),
    intervalMs: front.pollIntervalMs,
    log,
  });

  const server = http.createServer({ keepAliveTimeout: 65_000, noDelay: true }, (req, res) => {
    try {
      route(front, req, res);
    } catch (err) {
      log.error(`request handler: ${errorMessage(err)}`);
      sendJson(
        res,
        front.proxy.outcomes,
        500,
        openAiError("router internal error", "internal_error"),
        "internal",
      );
    }
  });
  server.headersTimeout = 66_000;
  // Body time is bounded by bodyTimeoutMs (front.bodyDeadlines), with an OpenAI-shaped 408.
  server.requestTimeout = 0;
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    front.proxy.outcomes.inc("client_error");
    // Never write into a response already on its way (Node's own handler checks the same).
    const current = (socket as unknown as { _httpMessage?: http.ServerResponse })._httpMessage;
    const reply = clientErrorResponse(err.code);
    if (reply && socket.writable && !current?.headersSent) socket.end(reply);
    else socket.destroy();
  });
  const host = config.host ?? DEFAULTS.host;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: config.port, host, backlog: 4096 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info(
    `listening on ${host}:${port}, policy ${config.policy}, ${all.length} replicas of ${front.modelNames.length} models, poll ${front.pollIntervalMs} ms${front.apiKeyDigest ? ", API key required" : ""}`,
  );
  if (!front.apiKeyDigest && !isLoopback(host))
    log.warn(`listening on ${host} without an API key: anyone who reaches this port can use it`);

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
        poller.stop();
        front.bodyDeadlines.stop();
        void front.parser.close();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const r of all) r.pool.destroy();
      }),
  };
}
