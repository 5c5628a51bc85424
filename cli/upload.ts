/**
 * `--upload gs://BUCKET/PREFIX` for run and experiment run: the sink is asked to take a marker
 * object before anything runs (a missing or forbidden bucket is refused then), and every run folder
 * the command made goes up when it ends — also after a failure or Ctrl-C. An upload cut short is
 * finished by `inferbench upload <run> <url>`, which skips the objects already there.
 */
import { errorMessage } from "../lib/errors.ts";
import { logger } from "../lib/logger.ts";
import { type ResultSink, sinkFor } from "../results/sinks/index.ts";

export async function uploadOne(sink: ResultSink, dir: string): Promise<void> {
  const r = await sink.uploadDir(dir);
  logger.info(
    `uploaded ${dir} → ${r.url}: ${r.uploaded} object(s), ${(r.bytes / 1e6).toFixed(1)} MB${r.skipped ? `; ${r.skipped} already there` : ""} (CRC32C verified)`,
  );
}

/**
 * Runs `body` with the upload wired: preflight first, then each folder `body` reports (and the
 * ones `more` lists once it is done) uploaded whatever happened. An upload failure is logged with
 * the command that finishes it; it does not hide the run's own outcome.
 */
export async function withUpload<T>(
  url: string | undefined,
  body: (onRun: (runId: string, dir: string) => void) => Promise<T>,
  more: () => string[] = () => [],
): Promise<T> {
  if (!url) return body(() => {});
  const sink = await sinkFor(url);
  await sink.preflight();
  logger.info(`--upload: ${sink.url} takes objects (a marker was written and removed)`);
  const dirs: string[] = [];
  try {
    return await body((_id, dir) => dirs.push(dir));
  } finally {
    for (const dir of [...dirs, ...more()]) {
      try {
        await uploadOne(sink, dir);
      } catch (err) {
        logger.error(
          `upload of ${dir} to ${sink.url} failed: ${errorMessage(err)}; finish it with: inferbench upload ${dir} ${url}`,
        );
      }
    }
  }
}
