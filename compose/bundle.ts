/**
 * The compose bundle as files on disk (`inferbench plan --out DIR`) and its content hash (what
 * decides whether a deployed host must be redeployed).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../lib/atomic.ts";
import type { StackPlan } from "../stacks/plan-types.ts";
import { PLAN_FILE, type RenderOptions, renderCompose } from "./render.ts";

/** sha256 over sorted (path, content) pairs: equal bundles ⇔ equal hash. */
export function bundleHash(files: Record<string, string>): string {
  const h = createHash("sha256");
  for (const path of Object.keys(files).sort()) {
    h.update(`${path}\0${Buffer.byteLength(files[path]!)}\0`);
    h.update(files[path]!);
  }
  return h.digest("hex");
}

/**
 * Writes the rendered compose project into `outDir` beside `plan.json`. `plan.json` itself is left
 * to the caller when it already exists (the plan command writes it). Returns the paths written.
 */
export async function writePlanBundle(
  outDir: string,
  plan: StackPlan,
  opts: RenderOptions = {},
): Promise<string[]> {
  const { files } = renderCompose(plan, opts);
  const written: string[] = [];
  for (const [rel, content] of Object.entries(files)) {
    const path = join(outDir, rel);
    if (rel === PLAN_FILE && existsSync(path)) continue;
    await writeFileAtomic(path, content);
    written.push(path);
  }
  return written;
}
