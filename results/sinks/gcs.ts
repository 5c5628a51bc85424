/**
 * The Google Cloud Storage sink, with the real client library (@google-cloud/storage): ambient
 * credentials (Application Default Credentials), or for an emulator or a private endpoint
 * INFERBENCH_GCS_ENDPOINT (the library's own STORAGE_EMULATOR_HOST sends its JSON calls and its
 * uploads to different paths of one value, so one of them 404s against fake-gcs-server). Every
 * object is checked after its upload: the CRC32C the bucket reports must be this file's. Files
 * from 5 MiB go up with GCS's resumable protocol (the library resumes a broken session itself).
 */
import { randomUUID } from "node:crypto";
import { lstatSync, readdirSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { CRC32C, Storage } from "@google-cloud/storage";
import { errorMessage, UserError } from "../../lib/errors.ts";
import type { ResultSink, UploadResult } from "./index.ts";

/** From this size a file uploads as a resumable session (the library's own default is 5 MB). */
export const RESUMABLE_FROM_BYTES = 5 * 1024 * 1024;

/** Regular files under dir, as `/`-separated paths, sorted (links and sockets are not results). */
export function filesUnder(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(dir, r));
    if (st.isDirectory()) out.push(...filesUnder(dir, r));
    else if (st.isFile()) out.push(r);
  }
  return out;
}

function refusal(url: string, err: unknown): UserError {
  const code = (err as { code?: number }).code;
  const why =
    code === 404
      ? "the bucket does not exist"
      : code === 401 || code === 403
        ? "these credentials may not write there"
        : "a test object could not be written there";
  return new UserError(`--upload ${url}: ${why} (${errorMessage(err).split("\n")[0]})`, {
    exitCode: 2,
    hint:
      code === 404
        ? "create it (gcloud storage buckets create gs://BUCKET) or fix the name"
        : "check `gcloud auth application-default login` (or GOOGLE_APPLICATION_CREDENTIALS) and the bucket's IAM (roles/storage.objectCreator)",
  });
}

export function gcsSink(
  bucketName: string,
  prefix: string,
  opts: { storage?: Storage } = {},
): ResultSink {
  const endpoint = process.env.INFERBENCH_GCS_ENDPOINT;
  const storage = opts.storage ?? new Storage(endpoint ? { apiEndpoint: endpoint } : {});
  const bucket = storage.bucket(bucketName);
  const url = `gs://${bucketName}${prefix ? `/${prefix}` : ""}`;
  const key = (...parts: string[]) => [prefix, ...parts].filter(Boolean).join("/");
  return {
    url,
    async preflight(signal) {
      signal?.throwIfAborted();
      const marker = bucket.file(key(`.inferbench-preflight-${randomUUID()}`));
      try {
        await marker.save("inferbench --upload preflight: safe to delete\n", { resumable: false });
        await marker.delete({ ignoreNotFound: true });
      } catch (err) {
        throw refusal(url, err);
      }
    },
    async uploadDir(dir, o = {}) {
      const run = basename(resolve(dir));
      const result: UploadResult = { uploaded: 0, skipped: 0, bytes: 0, url: `${url}/${run}/` };
      for (const rel of filesUnder(dir)) {
        o.signal?.throwIfAborted();
        const path = join(dir, rel);
        const name = key(run, rel);
        const local = (await CRC32C.fromFile(path)).toString();
        const file = bucket.file(name);
        const [exists] = await file.exists();
        if (exists && (await file.getMetadata())[0].crc32c === local) {
          result.skipped++;
          continue;
        }
        const size = lstatSync(path).size;
        await bucket.upload(path, {
          destination: name,
          resumable: size >= RESUMABLE_FROM_BYTES,
          validation: "crc32c",
        });
        const [meta] = await file.getMetadata();
        if (meta.crc32c !== local)
          throw new Error(
            `gs://${bucketName}/${name}: the bucket holds CRC32C ${meta.crc32c}, the file ${local}; upload again`,
          );
        result.uploaded++;
        result.bytes += size;
        o.onFile?.(rel);
      }
      return result;
    },
  };
}
