/**
 * File snapshots for node:test on Node 20 (t.assert.snapshot needs Node 22). Expected files live
 * beside the test in __snapshots__/; `UPDATE_SNAPSHOTS=1` rewrites them.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

export function matchSnapshot(dirUrl: string, name: string, actual: string): void {
  const path = fileURLToPath(new URL(`__snapshots__/${name}`, dirUrl));
  if (process.env.UPDATE_SNAPSHOTS === "1" || !existsSync(path)) {
    if (process.env.CI && !existsSync(path)) assert.fail(`missing snapshot ${path}`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.equal(
    actual,
    readFileSync(path, "utf8"),
    `snapshot ${name} differs (UPDATE_SNAPSHOTS=1 to accept)`,
  );
}
