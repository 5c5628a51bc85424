/**
 * One emulated engine's HTTP surface (`vllm serve` compatible): OpenAI chat and completions
 * (SSE streaming or not), /v1/models, /health, /metrics, OpenAI-style errors, fault injection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Logger } from "../../lib/logger.ts";
import { seededRandom } from "../../lib/random.ts";
import type { Tokenizer } from "../../lib/tokenizer.ts";
import { type BodyLimits, readBody } from "./body.ts";
import type { EngineCore, StepResult } from "./core.ts";
import { within } from "./deadline.ts";
import { StepLoop, stepDueWithin } from "./loop.ts";
import { LagStats, renderMetrics } from "./metrics.ts";
import { ChunkedEncoder } from "./prompt-tokens.ts";
import {
  checkPromptLength,
  checkTokenIds,
  type EngineRequest,
  errorBody,
  HttpError,
  parseJsonBody,
  validateBody,
} from "./request.ts";
import { SlicedQueue } from "./sliced.ts";
import { mixSeed, outputTokenAt, planOutput, type SafeVocab } from "./text.ts";

export interface FaultConfig {
  /** Probability per request of answering with this HTTP status instead of serving it. */
  errorRates?: Partial<Record<"400" | "429" | "500" | "503", number>>;
  /** Probability per request of freezing the whole engine for `stallSec`. */
  stallProbability?: number;
  stallSec?: number;
  /** The engine dies (connections reset, port closed) when request N arrives. */
  crashAfterRequests?: number;
}

export interface EngineServerOptions {
  name: string;
  model: string;
  hfPath: string;
  maxModelLen: number;
  core: EngineCore;
  tokenizer: Tokenizer;
  vocab: SafeVocab;
  natural: { median: number; sigma: number; cap: number };
  seed: number;
  startupDelaySec: number;
  v0Metrics: boolean;
  /** 503 beyond this many waiting requests. */
  maxWaiting: number;
  /** Request body limit (413 above it). */
  maxBodyBytes: number;
  /** Time a client may take to send its request (408 after). */
  requestTimeoutSec: number;
  faults?: FaultConfig;
  log: Logger;
  now: () => number;
  onCrash?: () => void;
  /** Bound on listen() (default LISTEN_TIMEOUT_MS). */
  listenTimeoutMs?: number;
  /** Bound on close() (default CLOSE_TIMEOUT_MS). */
  closeTimeoutMs?: number;
}

/** Binding a port is immediate or fails; longer means something is wrong. */
export const LISTEN_TIMEOUT_MS = 10_000;
/** close() destroys every connection first, so the server's own close follows at once. */
export const CLOSE_TIMEOUT_MS = 5_000;

/**
 * Request admission (parse, validate, tokenise) for every engine of the process: 0.5 ms slices,
 * and no job starts within 0.7 ms of a step boundary (a job takes ~0.5 ms).
 */
const admissionQueue = new SlicedQueue(0.5, undefined, undefined, () => stepDueWithin(0.0007));
/** Work one admission job does before yielding to the queue (a large prompt takes many jobs). */
const ADMISSION_SLICE_MS = 0.5;

/** One request on its way through admission (stages run in admission-queue jobs). */
interface Admission {
  chat: boolean;
  req: IncomingMessage;
  res: ServerResponse;
  arrival: number;
  stage: "parse" | "validate" | "tokenise" | "start";
  raw?: string;
  json?: Record<string, unknown>;
  request?: EngineRequest;
  encoder?: ChunkedEncoder;
  ids?: number[];
}

interface Active {
  id: string;
  res: ServerResponse;
  stream: boolean;
  chat: boolean;
  includeUsage: boolean;
  promptLen: number;
  seed: number;
  outputLen: number;
  /** Pre-rendered SSE chunk halves: head + JSON text + tail. */
  head: string;
  tail: string;
  texts: string[] | undefined;
  created: number;
  done: boolean;
}

/**
 * One chunk of a chunked response, byte-identical to `res.write(s)`: when the response owns its
 * connection with headers sent, the framed chunk goes to the socket in one write (res.write would
 * cork, queue four buffers and writev them from a nextTick — per token, that is most of the
 * per-token CPU at high concurrency); otherwise (pipelined, HTTP/1.0, not yet attached) res.write.
 */
export function writeChunk(res: ServerResponse, s: string): void {
  const sock = res.socket as (Socket & { _httpMessage?: unknown }) | null;
  if (
    sock !== null &&
    sock._httpMessage === res &&
    res.headersSent &&
    res.chunkedEncoding &&
    !res.writableEnded &&
    sock.writable &&
    s.length > 0
  ) {
    sock.write(`${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`);
    return;
  }
  res.write(s);
}

export class EngineServer {
  readonly server: Server;
  readonly loop: StepLoop;
  readonly lag = new LagStats();
  readonly injectedErrors: Record<string, number> = {};
  private readonly active = new Map<string, Active>();
  private readonly sockets = new Set<Socket>();
  private readonly readyAt: number;
  private counter = 0;
  private received = 0;
  private crashed = false;
  private readonly faultRandom: () => number;

  constructor(readonly opts: EngineServerOptions) {
    this.readyAt = opts.now() + opts.startupDelaySec;
    this.faultRandom = seededRandom(mixSeed(opts.seed, opts.name, "faults"));
    this.loop = new StepLoop(opts.core, {
      now: opts.now,
      lag: this.lag,
      log: opts.log,
      onStep: (r) => this.deliver(r),
    });
    // Node's own request timers bound what readBody's cannot: a client slow to send its headers.
    const timeoutMs = opts.requestTimeoutSec * 1000;
    this.server = createServer(
      {
        keepAlive: true,
        keepAliveTimeout: 75_000,
        headersTimeout: timeoutMs,
        requestTimeout: timeoutMs + 1000,
        connectionsCheckingInterval: Math.min(1000, timeoutMs),
      },
      (req, res) => this.handle(req, res),
    );
    this.server.on("connection", (s) => {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on("close", () => this.sockets.delete(s));
    });
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return socket.destroy();
      const timeout = err.code === "ERR_HTTP_REQUEST_TIMEOUT";
      const status = timeout ? 408 : 400;
      const body = errorBody(
        status,
        timeout
          ? `request not received within ${opts.requestTimeoutSec} s (engine-sim --request-timeout)`
          : `malformed HTTP request: ${err.code ?? err.message}`,
        timeout ? "Request Timeout" : "BadRequestError",
      );
      socket.end(
        `HTTP/1.1 ${status} ${timeout ? "Request Timeout" : "Bad Request"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  }

  private get bodyLimits(): BodyLimits {
    return {
      maxBytes: this.opts.maxBodyBytes,
      timeoutMs: this.opts.requestTimeoutSec * 1000,
    };
  }

  get core(): EngineCore {
    return this.opts.core;
  }

  get ready(): boolean {
    return !this.crashed && this.opts.now() >= this.readyAt;
  }

  listen(port: number, host: string): Promise<number> {
    const listening = new Promise<number>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ port, host, backlog: 4096 }, () => {
        this.server.off("error", reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
    return within(
      listening,
      this.opts.listenTimeoutMs ?? LISTEN_TIMEOUT_MS,
      `engine ${this.opts.name}: listening on ${host}:${port}`,
    );
  }

  /** Ends every stream and connection; fails (DeadlineError) if the server has not closed in time. */
  close(): Promise<void> {
    this.loop.close();
    for (const a of this.active.values()) a.res.destroy();
    this.active.clear();
    const closed = new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
    return within(
      closed,
      this.opts.closeTimeoutMs ?? CLOSE_TIMEOUT_MS,
      () =>
        `engine ${this.opts.name}: closing its server (${this.sockets.size} connections still open)`,
    );
  }

  /** Fault injection: the engine dies like a crashed vLLM (streams reset, port closed). */
  crash(): void {
    if (this.crashed) return;
    this.crashed = true;
    this.opts.log.error(`engine ${this.opts.name} crashed (fault injection)`);
    this.close().then(
      () => this.opts.onCrash?.(),
      (e: unknown) => {
        this.opts.log.error(String(e instanceof Error ? e.message : e));
        this.opts.onCrash?.();
      },
    );
  }

  private send(res: ServerResponse, status: number, body: string, type = "application/json") {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  private sendError(res: ServerResponse, e: HttpError) {
    this.send(res, e.status, errorBody(e.status, e.message, e.type));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = (req.url ?? "/").split("?")[0];
    const method = req.method ?? "GET";
    try {
      if (url === "/health" || url === "/ping") {
        if (method !== "GET" && method !== "POST") throw new HttpError(405, "method not allowed");
        if (this.ready) this.send(res, 200, "", "text/plain");
        else this.send(res, 503, errorBody(503, "model is loading", "ServiceUnavailableError"));
        return;
      }
      if (url === "/metrics" && method === "GET") {
        const body = renderMetrics({
          model: this.opts.model,
          engine: this.opts.name,
          core: this.opts.core,
          lag: this.lag,
          v0: this.opts.v0Metrics,
          injectedErrors: this.injectedErrors,
        });
        this.send(res, 200, body, "text/plain; version=0.0.4; charset=utf-8");
        return;
      }
      if (url === "/v1/models" && method === "GET") {
        this.send(
          res,
          200,
          JSON.stringify({
            object: "list",
            data: [
              {
                id: this.opts.model,
                object: "model",
                created: Math.floor(Date.now() / 1000),
                owned_by: "vllm",
                root: this.opts.hfPath,
                parent: null,
                max_model_len: this.opts.maxModelLen,
                permission: [],
              },
            ],
          }),
        );
        return;
      }
      if (url === "/version" && method === "GET") {
        this.send(res, 200, JSON.stringify({ version: "engine-sim" }));
        return;
      }
      if (url === "/reset_prefix_cache" && method === "POST") {
        this.opts.core.resetPrefixCache();
        this.send(res, 200, "", "text/plain");
        return;
      }
      if (url === "/v1/chat/completions" || url === "/v1/completions") {
        if (method !== "POST")
          throw new HttpError(405, `${method} not allowed on ${url}`, "MethodNotAllowed");
        readBody(req, res, this.bodyLimits, (raw) => {
          // Arrival is when the body is in; parsing and tokenising wait for a slice (sliced.ts).
          this.admit({
            chat: url === "/v1/chat/completions",
            req,
            res,
            arrival: this.opts.now(),
            stage: "parse",
            raw,
          });
        });
        return;
      }
      throw new HttpError(404, `not found: ${method} ${url}`);
    } catch (e) {
      this.fail(res, e);
    }
  }

  private fail(res: ServerResponse, e: unknown) {
    if (e instanceof HttpError) this.sendError(res, e);
    else {
      this.opts.log.error(`internal error: ${e instanceof Error ? e.stack : String(e)}`);
      this.sendError(res, new HttpError(500, "internal error", "InternalServerError"));
    }
  }

  /** Queues `a`'s admission; each job runs its stages for a slice, then yields to the queue. */
  private admit(a: Admission): void {
    const job = () => {
      if (a.res.destroyed || a.req.socket.destroyed) return; // the client left while queued
      try {
        if (!this.advance(a)) admissionQueue.push(job);
      } catch (e) {
        this.fail(a.res, e);
      }
    };
    admissionQueue.push(job);
  }

  /**
   * Runs admission stages for about ADMISSION_SLICE_MS: parse, validate (then fault injection),
   * tokenise (chunked, stopping past the context), start. True when the request is answered.
   */
  private advance(a: Admission): boolean {
    const until = performance.now() + ADMISSION_SLICE_MS;
    const f = this.opts.faults;
    if (a.stage === "parse") {
      if (this.crashed) {
        a.res.destroy();
        return true;
      }
      this.received++;
      if (f?.crashAfterRequests !== undefined && this.received >= f.crashAfterRequests) {
        this.crash();
        return true;
      }
      if (!this.ready) throw new HttpError(503, "model is loading");
      const json = parseJsonBody(a.raw!);
      a.raw = undefined;
      if (!json.ok) throw json.error;
      a.json = json.value;
      a.stage = "validate";
      if (performance.now() >= until) return false;
    }
    if (a.stage === "validate") {
      const v = validateBody(a.chat ? "chat" : "completions", a.json!, this.opts.model);
      a.json = undefined;
      if (!v.ok) throw v.error;
      a.request = v.value;
      if (f) this.injectFaults(f);
      const p = v.value.prompt;
      if ("ids" in p) a.ids = p.ids;
      else {
        // Past this count every context check fails: no need to count further.
        const len = this.opts.maxModelLen;
        const limit = Math.max(len, len - (v.value.maxTokens ?? 0));
        a.encoder = new ChunkedEncoder(this.opts.tokenizer, p.text, limit);
      }
      a.stage = a.ids ? "start" : "tokenise";
      if (performance.now() >= until) return false;
    }
    if (a.stage === "tokenise") {
      if (!a.encoder!.run(until - performance.now())) return false;
      a.ids = a.encoder!.ids;
      a.encoder = undefined;
    }
    this.start(a, a.request!, a.ids!);
    return true;
  }

  /** The checks that need the token count, then the request joins the engine. */
  private start(adm: Admission, body: EngineRequest, prompt: number[]): void {
    const { chat, req, res, arrival } = adm;
    const maxTokens = body.maxTokens;
    const maxLen = this.opts.maxModelLen;
    const invalid =
      checkPromptLength(body, prompt.length, maxLen) ??
      ("ids" in body.prompt ? checkTokenIds(prompt, this.opts.tokenizer.vocabSize) : undefined);
    if (invalid) throw invalid;
    if (this.opts.core.numWaiting >= this.opts.maxWaiting)
      throw new HttpError(503, `engine overloaded: ${this.opts.core.numWaiting} requests waiting`);

    const n = this.counter++;
    const seed = mixSeed(this.opts.seed, this.opts.name, body.seed ?? `#${n}`);
    const plan = planOutput(
      {
        promptTokens: prompt.length,
        maxModelLen: maxLen,
        maxTokens,
        minTokens: body.minTokens,
        ignoreEos: body.ignoreEos,
        natural: this.opts.natural,
      },
      seededRandom(seed),
    );
    const id = `${chat ? "chatcmpl" : "cmpl"}-${this.opts.name}-${n}`;
    const created = Math.floor(Date.now() / 1000);
    const stream = body.stream;
    const model = JSON.stringify(this.opts.model);
    const a: Active = {
      id,
      res,
      stream,
      chat,
      includeUsage: body.includeUsage,
      promptLen: prompt.length,
      seed,
      outputLen: plan.len,
      head: chat
        ? `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${model},"choices":[{"index":0,"delta":{"content":`
        : `data: {"id":"${id}","object":"text_completion","created":${created},"model":${model},"choices":[{"index":0,"text":`,
      tail: chat ? `},"logprobs":null,"finish_reason":` : `,"logprobs":null,"finish_reason":`,
      texts: stream ? undefined : [],
      created,
      done: false,
    };
    this.active.set(id, a);
    const vocab = this.opts.vocab;
    this.opts.core.addRequest({
      id,
      promptTokens: prompt,
      outputLen: plan.len,
      finishReason: plan.finishReason,
      outputToken: (i) => outputTokenAt(vocab, seed, i),
      arrival,
    });
    if (stream) {
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      res.flushHeaders();
    }
    res.on("close", () => {
      if (a.done) return;
      a.done = true;
      this.active.delete(id);
      if (this.opts.core.abort(id)) {
        this.loop.kick();
        for (const nb of this.loop.neighbours) if (nb.blocked) nb.kick();
      }
    });
    req.socket.setTimeout(0);
    this.loop.kick();
  }

  private injectFaults(f: FaultConfig): void {
    const r = this.faultRandom;
    for (const [status, p] of Object.entries(f.errorRates ?? {})) {
      if (p !== undefined && p > 0 && r() < p) {
        this.injectedErrors[status] = (this.injectedErrors[status] ?? 0) + 1;
        const code = Number(status);
        throw new HttpError(
          code,
          `injected fault: ${status}`,
          code === 429 ? "RateLimitError" : code === 500 ? "InternalServerError" : undefined,
        );
      }
    }
    if (f.stallProbability !== undefined && f.stallProbability > 0 && r() < f.stallProbability)
      this.loop.stall(f.stallSec ?? 1);
  }

  private deliver(step: StepResult): void {
    const vocab = this.opts.vocab;
    for (const ev of step.events) {
      const a = this.active.get(ev.id);
      if (!a || a.done) continue;
      const id = outputTokenAt(vocab, a.seed, ev.index);
      if (a.stream) {
        let out = "";
        if (ev.index === 0 && a.chat)
          out += `${a.head.replace('"delta":{"content":', '"delta":{"role":"assistant","content":')}""${a.tail}null}]}\n\n`;
        out += `${a.head}${vocab.jsonOf.get(id) ?? '""'}${a.tail}${ev.finish ? `"${ev.finish}"` : "null"}}]}\n\n`;
        if (ev.finish) {
          if (a.includeUsage) out += `data: ${JSON.stringify(this.usageChunk(a))}\n\n`;
          out += "data: [DONE]\n\n";
          a.done = true;
          this.active.delete(a.id);
          a.res.end(out);
        } else writeChunk(a.res, out);
      } else {
        a.texts!.push(vocab.textOf.get(id) ?? "");
        if (ev.finish) {
          a.done = true;
          this.active.delete(a.id);
          this.send(a.res, 200, JSON.stringify(this.fullResponse(a, a.texts!.join(""), ev.finish)));
        }
      }
    }
  }

  private usage(a: Active) {
    return {
      prompt_tokens: a.promptLen,
      completion_tokens: a.outputLen,
      total_tokens: a.promptLen + a.outputLen,
    };
  }

  private usageChunk(a: Active) {
    return {
      id: a.id,
      object: a.chat ? "chat.completion.chunk" : "text_completion",
      created: a.created,
      model: this.opts.model,
      choices: [],
      usage: this.usage(a),
    };
  }

  private fullResponse(a: Active, text: string, finish: string) {
    const common = { id: a.id, created: a.created, model: this.opts.model, usage: this.usage(a) };
    if (a.chat)
      return {
        ...common,
        object: "chat.completion",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: text, tool_calls: [] },
            logprobs: null,
            finish_reason: finish,
            stop_reason: null,
          },
        ],
      };
    return {
      ...common,
      object: "text_completion",
      choices: [{ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null }],
    };
  }
}
