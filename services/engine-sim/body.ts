/**
 * Reads a request body within bounds: at most `maxBytes` (413 as soon as it is passed, or at once
 * when Content-Length says so), JSON shape guarded while it streams in (400), and complete within
 * `timeoutMs` of the request (408). Decoding happens chunk by chunk as data arrives, so the end of
 * a large body costs a join, not a 4 MB decode in one go.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { StringDecoder } from "node:string_decoder";
import { errorBody, HttpError, JsonShapeGuard } from "./request.ts";

/** 4 MiB: 4× the largest valid body (131,072 token ids ≈ 0.9 MB); flag --max-body-bytes. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Seconds a client may take to send its request; flag --request-timeout. */
export const DEFAULT_REQUEST_TIMEOUT_SEC = 60;

/** Bytes of a refused body read and dropped before the connection is cut (~50 ms of CPU). */
export const DRAIN_BYTES = 64 * 1024 * 1024;

export interface BodyLimits {
  maxBytes: number;
  timeoutMs: number;
}

function answer(res: ServerResponse, e: HttpError, close: boolean): void {
  if (res.headersSent || res.destroyed) return;
  const body = errorBody(e.status, e.message, e.type);
  res.writeHead(e.status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...(close ? { connection: "close" } : {}),
  });
  res.end(body);
}

/**
 * Refuses a body that may still be arriving. The rest is read and dropped first, and the answer
 * sent when it has all arrived: answering earlier makes Node close a `Connection: close`
 * request's socket with unread data in it, and the client, still writing, gets a reset instead
 * of the answer. A body still coming after DRAIN_BYTES or `timeoutMs` more gets the answer and
 * the connection cut. A 408 (the client is too slow) is answered at once.
 */
export function refuseBody(
  req: IncomingMessage,
  res: ServerResponse,
  e: HttpError,
  limits: BodyLimits,
): void {
  if (e.status === 408 || req.complete) {
    answer(res, e, e.status === 408);
    return;
  }
  let drained = 0;
  let answered = false;
  const cut = () => {
    if (answered) return;
    answered = true;
    answer(res, e, true);
    res.once("finish", () => req.socket.destroy());
  };
  const timer = setTimeout(cut, limits.timeoutMs);
  timer.unref();
  req.on("data", (c: Buffer) => {
    drained += c.length;
    if (drained > DRAIN_BYTES) cut();
  });
  req.once("end", () => {
    clearTimeout(timer);
    if (answered) return;
    answered = true;
    answer(res, e, false);
  });
  req.once("close", () => clearTimeout(timer));
  req.resume();
}

/**
 * Calls `then` with the body text once it is complete and within limits; otherwise answers
 * 413/400/408 itself and never calls `then`.
 */
export function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  limits: BodyLimits,
  then: (raw: string) => void,
): void {
  const declared = Number(req.headers["content-length"]);
  const tooLarge = () =>
    new HttpError(
      413,
      `request body is larger than ${limits.maxBytes} bytes (engine-sim --max-body-bytes)`,
    );
  if (declared > limits.maxBytes) {
    refuseBody(req, res, tooLarge(), limits);
    return;
  }
  const decoder = new StringDecoder("utf8");
  const guard = new JsonShapeGuard();
  const parts: string[] = [];
  let size = 0;
  let done = false;
  const finish = (e?: HttpError) => {
    done = true;
    clearTimeout(timer);
    parts.length = 0;
    if (e) refuseBody(req, res, e, limits);
  };
  const timer = setTimeout(
    () =>
      finish(
        new HttpError(
          408,
          `request body not received within ${limits.timeoutMs / 1000} s (${size} bytes arrived; engine-sim --request-timeout)`,
        ),
      ),
    limits.timeoutMs,
  );
  req.on("data", (c: Buffer) => {
    if (done) return;
    size += c.length;
    const bad = size > limits.maxBytes ? tooLarge() : guard.feed(c);
    if (bad) finish(bad);
    else parts.push(decoder.write(c));
  });
  req.on("error", () => {
    finish();
    res.destroy();
  });
  req.on("close", () => {
    if (!done) finish();
  });
  req.on("end", () => {
    if (done) return;
    parts.push(decoder.end());
    const raw = parts.join("");
    finish();
    then(raw);
  });
}
