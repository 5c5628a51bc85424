/**
 * Where a run folder goes besides this machine: result sinks behind one interface (as
 * inference-perf keeps its storage). `gs://bucket/prefix` is Google Cloud Storage; a sink is
 * asked to accept a marker object before anything runs, so a missing or forbidden bucket is
 * refused up front, not after an hour of measuring.
 */
import { UserError } from "../../lib/errors.ts";

export interface UploadResult {
  /** Objects written now. */
  uploaded: number;
  /** Objects already there with the same checksum (an earlier, interrupted upload). */
  skipped: number;
  bytes: number;
  /** Where the folder went, e.g. gs://bucket/prefix/<run-id>/. */
  url: string;
}

export interface ResultSink {
  readonly url: string;
  /** Writes and deletes a marker object; refuses (exit 2) a bucket that is missing or not writable. */
  preflight(signal?: AbortSignal): Promise<void>;
  /**
   * Uploads every file of `dir` under `<prefix>/<basename(dir)>/`, each checksum-verified; an
   * object already there with the same checksum is skipped, so a second call resumes the first.
   */
  uploadDir(
    dir: string,
    opts?: { signal?: AbortSignal; onFile?: (rel: string) => void },
  ): Promise<UploadResult>;
}

/** `gs://bucket[/prefix]` → its parts; anything else is refused with what is supported. */
export function parseSinkUrl(url: string): { scheme: "gs"; bucket: string; prefix: string } {
  const m = /^gs:\/\/([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(\/.*)?$/.exec(url);
  if (!m)
    throw new UserError(`--upload ${url}: expected gs://BUCKET[/PREFIX]`, {
      exitCode: 2,
      hint: "bucket names are 3-222 lowercase letters, digits, '-', '_' and '.'",
    });
  const prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
  if (prefix.split("/").some((p) => p === "." || p === ".."))
    throw new UserError(`--upload ${url}: the prefix may not hold . or .. segments`, {
      exitCode: 2,
    });
  return { scheme: "gs", bucket: m[1]!, prefix };
}

export async function sinkFor(url: string): Promise<ResultSink> {
  const { bucket, prefix } = parseSinkUrl(url);
  const { gcsSink } = await import("./gcs.ts");
  return gcsSink(bucket, prefix);
}
