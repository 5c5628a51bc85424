/** The router's own responses: OpenAI-shaped error bodies and small JSON replies. */
import type http from "node:http";
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
