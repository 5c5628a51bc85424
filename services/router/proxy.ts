/**
 * The data path: choose a replica, send it the client's request (body bytes unchanged), stream
 * the response back chunk by chunk, and account for every outcome.
 *
 * Failure handling: connect errors and timeouts eject the replica; a request that never reached
 * a replica is retried once on another; one whose response has started is never retried; a
 * client disconnect aborts the upstream request.
 */
import type http from "node:http";
import { performance } from "node:perf_hooks";
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/logger.ts";
import type { RouterPolicy, RouterPolicyOptions } from "../../stacks/plan-types.ts";
import { chooseReplica, policyUsesPrefix } from "./choose.ts";
import type { Rng } from "./policies.ts";
import { ejectReplica, type ModelGroup, type Replica, snapshot } from "./replica.ts";
import { openAiError, sendJson } from "./respond.ts";
import type { Counter, Histogram } from "./stats.ts";
import type { UpstreamHandler, UpstreamRequest } from "./upstream.ts";

export interface ProxyContext {
  policy: RouterPolicy;
  options: RouterPolicyOptions;
  rng: Rng;
  staleMs: number;
  /** The router checks its own API key: the client's authorization is not the engine's. */
  stripAuthorization: boolean;
  log: Logger;
  outcomes: Counter;
  added: Histogram;
}

export interface ProxyJob {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  group: ModelGroup;
  body: Buffer;
  sessionKey: string | undefined;
  hashes: number[] | undefined;
  /** performance.now() when the body was complete. */
  tBody: number;
}

export type UpstreamFailure = "connect" | "connect_timeout" | "timeout" | "reset";

/** Errors that mean the request never reached the replica (safe to retry elsewhere). */
const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
]);

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

/** Never relayed in either direction (RFC 9110 §7.6.1, plus the router's own header). */
export const HOP_BY_HOP = new Set([
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

/**
 * Request head for the replica: the client's request line and headers minus hop-by-hop ones and
 * those the pool sets (host, content-length); `expect` is answered here. Node's parser already
 * rejected CR/LF in names and values.
 */
export function upstreamHead(
  method: string,
  url: string,
  rawHeaders: readonly string[],
  stripAuthorization: boolean,
): string {
  let head = `${method} ${url} HTTP/1.1\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const k = rawHeaders[i]!.toLowerCase();
    if (HOP_BY_HOP.has(k) || k === "host" || k === "content-length" || k === "expect") continue;
    if (k === "authorization" && stripAuthorization) continue;
    head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  }
  return head;
}

/** Response headers for the client, flat [name, value, ...]: the replica's minus hop-by-hop. */
export function clientHeaders(upHeaders: string[], lower: string[], engine: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < lower.length; i++)
    if (!HOP_BY_HOP.has(lower[i]!)) out.push(upHeaders[2 * i]!, upHeaders[2 * i + 1]!);
  out.push("x-inferbench-backend", engine);
  return out;
}

/** Chooses a replica for the job (or -1) and records the choice in the group's state. */
function pickReplica(ctx: ProxyContext, job: ProxyJob, excluded: number): number {
  const g = job.group;
  // Round-robin reads only `healthy`: the replicas themselves serve as the snapshot unless one is
  // excluded (retry), which saves building one per request.
  const rr = ctx.policy === "round-robin";
  const views =
    rr && excluded < 0
      ? g.replicas
      : snapshot(g, excluded, rr ? 0 : performance.now(), ctx.staleMs);
  const prefix = policyUsesPrefix(ctx.policy);
  const choice = chooseReplica(
    { policy: ctx.policy, options: ctx.options, rrCursor: g.rrCursor, ring: g.ring, rng: ctx.rng },
    views,
    {
      sessionKey: job.sessionKey,
      prefixMatch: prefix ? g.prefix.match(job.hashes ?? [], views.length) : undefined,
      prefixBlocks: job.hashes?.length ?? 0,
    },
  );
  g.rrCursor = choice.rrCursor;
  if (choice.pick >= 0 && prefix && job.hashes) g.prefix.record(job.hashes, choice.pick);
  return choice.pick;
}

/** Sends the job to a replica (attempt 0) or, after a connect failure on `excluded`, to another. */
export function proxyRequest(ctx: ProxyContext, job: ProxyJob, attempt = 0, excluded = -1): void {
  const { res, group: g } = job;
  const pick = pickReplica(ctx, job, excluded);
  if (pick < 0) {
    sendJson(
      res,
      ctx.outcomes,
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
  const head = upstreamHead(
    job.req.method!,
    job.req.url!,
    job.req.rawHeaders,
    ctx.stripAuthorization,
  );
  const ex = new Exchange(ctx, job, r, attempt, pick);
  ex.start(head);
}

/** The exchange's client-close listener. */
function listener(ex: Exchange): () => void {
  return () => ex.clientClosed();
}

/** Shared by every request (nextTick passes the exchange): no closure per request. */
function uncorkResponse(ex: Exchange): void {
  ex.uncork();
}

/** One attempt of one request on one replica: the upstream handler and the client side. */
class Exchange implements UpstreamHandler {
  private up: UpstreamRequest | undefined;
  private responded = false;
  private settled = false;
  private status = 0;
  private corked = false;
  private tDispatch = 0;
  // Unnamed (an argument) on purpose: tsx's keepNames wraps every named closure in a
  // defineProperty call, ~0.4 µs per request each. No property is added to `res` either: that
  // would change the shape of Node's ServerResponse objects and slow its own code paths.
  private readonly onClose: () => void;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly job: ProxyJob,
    private readonly r: Replica,
    private readonly attempt: number,
    private readonly pick: number,
  ) {
    this.onClose = listener(this);
  }

  start(head: string): void {
    this.job.res.on("close", this.onClose);
    this.tDispatch = performance.now();
    this.up = this.r.pool.request(head, this.job.body, this);
  }

  clientClosed(): void {
    if (this.settled || this.job.res.writableFinished) return;
    // Client went away before the response ended: cancel the upstream request.
    this.r.errors.inc("client_disconnect");
    this.ctx.outcomes.inc("client_disconnect");
    this.settle();
    this.up?.abort();
  }

  drained(): void {
    this.up?.resume();
  }

  uncork(): void {
    this.corked = false;
    this.job.res.uncork();
  }

  /** Stops listening to the client response (the attempt is over or hands over to a retry). */
  private detach(): void {
    this.job.res.off("close", this.onClose);
  }

  /** Ends the attempt's bookkeeping once; false when it already ended. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.r.inFlight--;
    this.r.completedSincePoll++;
    return true;
  }

  private streamBroken(): void {
    this.r.errors.inc("stream_error");
    this.ctx.outcomes.inc("stream_error");
    this.job.res.destroy();
  }

  onResponseStart(statusCode: number, upHeaders: string[], lower: string[]): void {
    const res = this.job.res;
    this.responded = true;
    this.status = statusCode;
    const tResp = performance.now();
    try {
      res.writeHead(statusCode, clientHeaders(upHeaders, lower, this.r.cfg.engine));
    } catch (err) {
      // A header Node refuses to send (invalid characters): the response cannot be relayed.
      this.ctx.log.warn(`${this.r.cfg.engine}: unrelayable response head: ${errorMessage(err)}`);
      this.up?.abort();
      if (this.settle()) this.streamBroken();
      return;
    }
    this.ctx.added.observe((this.tDispatch - this.job.tBody + performance.now() - tResp) / 1000);
  }

  onData(chunk: Buffer): boolean {
    // Bytes go out as they came, in this same tick: chunks parsed from one read are corked into
    // one writev (fewer syscalls, no added delay). Pause the replica while the client is slow.
    const res = this.job.res;
    if (!this.corked) {
      this.corked = true;
      res.cork();
      process.nextTick(uncorkResponse, this);
    }
    if (!res.write(chunk)) {
      res.once("drain", () => this.drained());
      return false;
    }
    return true;
  }

  onEnd(): void {
    if (!this.settle()) return;
    this.detach();
    this.job.res.end();
    const status = this.status;
    if (status >= 500) this.r.errors.inc("http_5xx");
    this.ctx.outcomes.inc(status < 400 ? "ok" : status < 500 ? "upstream_4xx" : "upstream_5xx");
  }

  onError(err: { code: string }): void {
    if (!this.settle()) return;
    // Broken mid-stream: never retried (tokens already went out); cut the client off too.
    if (this.responded) {
      this.streamBroken();
      return;
    }
    const { ctx, job, r } = this;
    const res = job.res;
    const c = classifyUpstreamError(err.code);
    r.errors.inc(c.kind);
    if (c.eject) ejectReplica(r, `${c.kind}${err.code ? ` ${err.code}` : ""}`, ctx.log.warn);
    if (res.destroyed || res.writableEnded) return;
    if (c.neverReached && this.attempt === 0 && job.group.replicas.length > 1) {
      r.retries++;
      ctx.outcomes.inc("retried");
      this.detach();
      proxyRequest(ctx, job, 1, this.pick);
      return;
    }
    if (c.kind === "timeout" || c.kind === "connect_timeout")
      sendJson(
        res,
        ctx.outcomes,
        504,
        openAiError(`replica ${r.cfg.engine} timed out`, "timeout"),
        "timeout",
      );
    else
      sendJson(
        res,
        ctx.outcomes,
        502,
        openAiError(`replica ${r.cfg.engine} failed: ${c.kind}`, "bad_gateway"),
        "upstream_error",
      );
  }
}
