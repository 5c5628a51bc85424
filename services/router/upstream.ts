/**
 * Lean HTTP/1.1 keep-alive client for the router's upstream requests: one request per connection
 * at a time, idle connections reused LIFO, the request head and body written in one corked write,
 * the response parsed in place (status line + headers once, then body slices handed on without
 * copying). Profiling the router under `wrk -t1 -c100` put ~60% of its CPU in undici's per-request
 * machinery (Request objects, header validation, handler wrappers, the WASM parser round trips);
 * this client does only what a proxy to an OpenAI-compatible engine needs.
 *
 * Framing (RFC 9112 §6.3): 1xx (skipped), 204 and 304 have no body; `transfer-encoding: chunked`
 * is decoded; otherwise `content-length`; otherwise the body runs to the connection's close.
 * Error codes reuse undici's names where the meaning is the same so that classifyUpstreamError
 * stays one table: UND_ERR_CONNECT_TIMEOUT, UND_ERR_HEADERS_TIMEOUT; socket errors keep their
 * errno code (ECONNREFUSED…); a closed or malformed response is UPSTREAM_CLOSED / UPSTREAM_PROTOCOL.
 */
import net from "node:net";
import { performance } from "node:perf_hooks";

export interface UpstreamHandler {
  /** `headers` is flat [name, value, ...] as received; `lower` holds the lower-cased names. */
  onResponseStart(status: number, headers: string[], lower: string[]): void;
  /** Return false to pause reading until `resume()`. */
  onData(chunk: Buffer): boolean;
  onEnd(): void;
  onError(err: UpstreamError): void;
}

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface UpstreamRequest {
  /** Drop the exchange (client went away): the connection is destroyed, no callback follows. */
  abort(): void;
  resume(): void;
}

export interface UpstreamPoolOptions {
  connectTimeoutMs: number;
  /** Time from dispatch to the complete response head (0 = none). */
  headersTimeoutMs: number;
  /** Idle connections are closed after this long (below uvicorn's 5 s keep-alive). */
  keepAliveTimeoutMs: number;
}

const MAX_HEAD_BYTES = 64 * 1024;
const MAX_LINE_BYTES = 4 * 1024;

export interface ResponseHead {
  status: number;
  headers: string[];
  lower: string[];
  /** -1: chunked; -2: until close; otherwise the content length (0 = no body). */
  bodyLength: number;
  keepAlive: boolean;
}

/**
 * Parses a response head (without the final CRLFCRLF) for a response to a non-HEAD request.
 * Throws on anything malformed. Pure, exported for tests.
 */
export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split("\r\n");
  const sl = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
  if (!sl) throw new Error(`bad status line ${JSON.stringify((lines[0] ?? "").slice(0, 80))}`);
  const status = Number(sl[2]);
  let keepAlive = sl[1] === "1";
  const headers: string[] = [];
  const lower: string[] = [];
  let chunked = false;
  let length = -2;
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    const c = l.indexOf(":");
    if (c <= 0) throw new Error(`bad header line ${JSON.stringify(l.slice(0, 80))}`);
    const name = l.slice(0, c);
    if (name.trim() !== name) throw new Error("whitespace in header name");
    const value = l.slice(c + 1).trim();
    const k = name.toLowerCase();
    headers.push(name, value);
    lower.push(k);
    if (k === "content-length") {
      if (!/^\d+$/.test(value)) throw new Error(`bad content-length ${JSON.stringify(value)}`);
      const n = Number(value);
      if (length >= 0 && length !== n) throw new Error("conflicting content-length");
      length = n;
    } else if (k === "transfer-encoding") {
      chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
      if (!chunked) keepAlive = false; // unknown coding: body runs to close
    } else if (k === "connection") {
      const v = value.toLowerCase();
      if (v.includes("close")) keepAlive = false;
      else if (v.includes("keep-alive")) keepAlive = true;
    }
  }
  let bodyLength: number;
  if ((status >= 100 && status < 200) || status === 204 || status === 304) bodyLength = 0;
  else if (chunked) bodyLength = -1;
  else if (length >= 0) bodyLength = length;
  else {
    bodyLength = -2;
    keepAlive = false;
  }
  return { status, headers, lower, bodyLength, keepAlive };
}

enum S {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkCrlf,
  Trailers,
  UntilClose,
  Done,
}

class Conn {
  readonly socket: net.Socket;
  ex: Exchange | undefined;
  connected = false;
  reused = false;
  idleSince = 0;
  state = S.Done;
  remaining = 0;
  pending: Buffer | undefined; // partial head / chunk-size line / trailer line
  keepAlive = true;

  constructor(
    readonly pool: UpstreamPool,
    host: string,
    port: number,
  ) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on("connect", () => {
      this.connected = true;
      this.ex?.clearConnectTimer();
    });
    this.socket.on("data", (d: Buffer) => this.onData(d));
    this.socket.on("error", (err: NodeJS.ErrnoException) =>
      this.fail(new UpstreamError(err.message, err.code ?? "UPSTREAM_CLOSED")),
    );
    this.socket.on("close", () => {
      this.pool.forget(this);
      if (this.ex && this.state === S.UntilClose) this.finish();
      else this.fail(new UpstreamError("upstream closed the connection", "UPSTREAM_CLOSED"));
    });
  }

  start(ex: Exchange, head: string, body: Buffer): void {
    this.ex = ex;
    this.state = S.Head;
    this.pending = undefined;
    const s = this.socket;
    s.cork();
    s.write(head, "latin1");
    if (body.length > 0) s.write(body);
    s.uncork();
  }

  fail(err: UpstreamError): void {
    const ex = this.ex;
    this.ex = undefined;
    this.keepAlive = false;
    this.socket.destroy();
    if (ex) ex.error(err);
  }

  private finish(): void {
    const ex = this.ex;
    this.ex = undefined;
    this.state = S.Done;
    if (!ex) return;
    ex.done();
    if (this.keepAlive && !this.socket.destroyed) this.pool.release(this);
    else this.socket.destroy();
  }

  private emit(ex: Exchange, b: Buffer): void {
    if (b.length > 0 && !ex.handler.onData(b)) this.socket.pause();
  }

  private onData(d: Buffer): void {
    let i = 0;
    while (i < d.length) {
      const ex = this.ex;
      if (!ex || this.state === S.Done) {
        // Bytes nobody asked for (or after the response ended): the connection is unusable.
        this.keepAlive = false;
        this.socket.destroy();
        return;
      }
      switch (this.state) {
        case S.Head: {
          let buf = d.subarray(i);
          let from = 0;
          if (this.pending) {
            from = Math.max(0, this.pending.length - 3);
            buf = Buffer.concat([this.pending, buf]);
            this.pending = undefined;
          }
          const e = buf.indexOf("\r\n\r\n", from, "latin1");
          if (e < 0) {
            if (buf.length > MAX_HEAD_BYTES) {
              this.fail(new UpstreamError("response head too large", "UPSTREAM_PROTOCOL"));
              return;
            }
            this.pending = buf;
            return;
          }
          let h: ResponseHead;
          try {
            h = parseResponseHead(buf.toString("latin1", 0, e));
          } catch (err) {
            this.fail(new UpstreamError((err as Error).message, "UPSTREAM_PROTOCOL"));
            return;
          }
          d = buf;
          i = e + 4;
          if (h.status >= 100 && h.status < 200) {
            if (h.status === 101) {
              this.fail(new UpstreamError("unexpected upgrade", "UPSTREAM_PROTOCOL"));
              return;
            }
            continue; // interim response: the real head follows
          }
          this.keepAlive = h.keepAlive;
          ex.clearHeadersTimer();
          ex.handler.onResponseStart(h.status, h.headers, h.lower);
          if (this.ex !== ex) return; // aborted from the handler
          if (h.bodyLength === 0) this.finish();
          else if (h.bodyLength === -1) this.state = S.ChunkSize;
          else if (h.bodyLength === -2) this.state = S.UntilClose;
          else {
            this.state = S.Length;
            this.remaining = h.bodyLength;
          }
          break;
        }
        case S.Length:
        case S.ChunkData: {
          const n = Math.min(this.remaining, d.length - i);
          this.emit(ex, d.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            if (this.state === S.Length) this.finish();
            else {
              this.state = S.ChunkCrlf;
              this.remaining = 2;
            }
          }
          break;
        }
        case S.ChunkCrlf: {
          const n = Math.min(this.remaining, d.length - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = S.ChunkSize;
          break;
        }
        case S.ChunkSize:
        case S.Trailers: {
          const nl = d.indexOf(10, i);
          if (nl < 0) {
            const part = d.subarray(i);
            this.pending = this.pending ? Buffer.concat([this.pending, part]) : part;
            if (this.pending.length > MAX_LINE_BYTES) {
              this.fail(new UpstreamError("chunk line too long", "UPSTREAM_PROTOCOL"));
              return;
            }
            return;
          }
          let line = d.toString("latin1", i, nl);
          if (this.pending) {
            line = this.pending.toString("latin1") + line;
            this.pending = undefined;
          }
          i = nl + 1;
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (this.state === S.Trailers) {
            if (line === "") this.finish();
            break;
          }
          const semi = line.indexOf(";");
          const hex = (semi >= 0 ? line.slice(0, semi) : line).trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) {
            this.fail(new UpstreamError("bad chunk size", "UPSTREAM_PROTOCOL"));
            return;
          }
          const size = Number.parseInt(hex, 16);
          if (size === 0) this.state = S.Trailers;
          else {
            this.state = S.ChunkData;
            this.remaining = size;
          }
          break;
        }
        case S.UntilClose:
          this.emit(ex, d.subarray(i));
          i = d.length;
          break;
      }
    }
  }
}

class Exchange implements UpstreamRequest {
  private connectTimer: NodeJS.Timeout | undefined;
  private headersTimer: NodeJS.Timeout | undefined;
  private over = false;
  constructor(
    readonly conn: Conn,
    readonly handler: UpstreamHandler,
    opts: UpstreamPoolOptions,
  ) {
    if (!conn.connected && opts.connectTimeoutMs > 0)
      this.connectTimer = setTimeout(
        () =>
          conn.fail(
            new UpstreamError(
              `connect timed out after ${opts.connectTimeoutMs} ms`,
              "UND_ERR_CONNECT_TIMEOUT",
            ),
          ),
        opts.connectTimeoutMs,
      );
    if (opts.headersTimeoutMs > 0)
      this.headersTimer = setTimeout(
        () =>
          conn.fail(
            new UpstreamError(
              `no response head after ${opts.headersTimeoutMs} ms`,
              "UND_ERR_HEADERS_TIMEOUT",
            ),
          ),
        opts.headersTimeoutMs,
      );
  }
  clearConnectTimer(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }
  clearHeadersTimer(): void {
    if (this.headersTimer) clearTimeout(this.headersTimer);
    this.headersTimer = undefined;
  }
  private settle(): boolean {
    if (this.over) return false;
    this.over = true;
    this.clearConnectTimer();
    this.clearHeadersTimer();
    return true;
  }
  done(): void {
    if (this.settle()) this.handler.onEnd();
  }
  error(err: UpstreamError): void {
    if (this.settle()) this.handler.onError(err);
  }
  abort(): void {
    if (!this.settle()) return;
    if (this.conn.ex === this) {
      this.conn.ex = undefined;
      this.conn.keepAlive = false;
      this.conn.socket.destroy();
    }
  }
  resume(): void {
    if (!this.over) this.conn.socket.resume();
  }
}

/** Connections to one replica. */
export class UpstreamPool {
  private readonly idle: Conn[] = [];
  private readonly all = new Set<Conn>();
  private readonly sweep: NodeJS.Timeout;
  private closed = false;
  readonly hostHeader: string;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly opts: UpstreamPoolOptions,
  ) {
    this.hostHeader = `host: ${host.includes(":") ? `[${host}]` : host}:${port}\r\n`;
    // Idle expiry by a coarse sweep instead of a timer re-armed on every request.
    const every = Math.max(250, Math.min(1000, opts.keepAliveTimeoutMs / 4));
    this.sweep = setInterval(() => this.expire(), every);
    this.sweep.unref();
  }

  /**
   * Sends `head` (request line + headers, without host / content-length and the final CRLF, which
   * are added here) and `body` on an idle or new connection.
   */
  request(head: string, body: Buffer, handler: UpstreamHandler): UpstreamRequest {
    let conn = this.idle.pop();
    while (conn && (conn.socket.destroyed || conn.socket.readableEnded)) conn = this.idle.pop();
    if (!conn) {
      conn = new Conn(this, this.host, this.port);
      this.all.add(conn);
    } else conn.reused = true;
    const ex = new Exchange(conn, handler, this.opts);
    if (this.closed) {
      queueMicrotask(() => ex.error(new UpstreamError("pool closed", "UPSTREAM_CLOSED")));
      return ex;
    }
    conn.start(ex, `${head}${this.hostHeader}content-length: ${body.length}\r\n\r\n`, body);
    return ex;
  }

  release(c: Conn): void {
    if (this.closed) return void c.socket.destroy();
    c.idleSince = performance.now();
    c.socket.resume();
    this.idle.push(c);
  }

  forget(c: Conn): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  private expire(): void {
    const cutoff = performance.now() - this.opts.keepAliveTimeoutMs;
    // Oldest idle connections sit at the bottom of the LIFO stack.
    while (this.idle.length > 0 && this.idle[0]!.idleSince < cutoff)
      this.idle.shift()!.socket.destroy();
  }

  /** Open connections (busy + idle). */
  size(): number {
    return this.all.size;
  }

  destroy(): void {
    this.closed = true;
    clearInterval(this.sweep);
    for (const c of this.all) c.fail(new UpstreamError("pool closed", "UPSTREAM_CLOSED"));
    this.all.clear();
    this.idle.length = 0;
  }
}
