/** The router's own responses: OpenAI-shaped error bodies and small JSON replies. */
import http from "node:http";
import type { Counter } from "./stats.ts";

/** `{"error":{"message","type","param","code"}}`, the shape OpenAI clients and vLLM use. */
export function openAiError(message: string, type: string, code: string | null = null): string {
  return JSON.stringify({ error: { message, type, param: null, code } });
}

/**
 * Sends `body` as JSON and counts `outcome`; a response whose head already went out (or whose
 * client is gone) is cut instead.
 */
export function sendJson(
  res: http.ServerResponse,
  outcomes: Counter,
  status: number,
  body: string,
  outcome: string,
  extra: Record<string, string> = {},
): void {
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
}

/**
 * The router's answer to a request Node's HTTP parser rejected (`clientError`), as a raw response
 * with an OpenAI-shaped body, or undefined when nothing should be written (the peer reset).
 * Status as Node's own default handler picks it: 431 header overflow, 413 chunk extensions too
 * large, 408 head not received in time, else 400.
 */
export function clientErrorResponse(code: string | undefined): string | undefined {
  if (code === "ECONNRESET" || code === "EPIPE") return undefined;
  let status = 400;
  let message = `malformed HTTP request${code ? ` (${code})` : ""}`;
  if (code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    message = "request header fields too large";
  } else if (code === "HPE_CHUNK_EXTENSIONS_OVERFLOW") {
    status = 413;
    message = "chunk extensions too large";
  } else if (code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    message = "request head not received in time";
  }
  const body = openAiError(message, "invalid_request_error");
  return (
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}
