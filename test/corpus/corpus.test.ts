/**
 * The bad-input corpus: every case of test/corpus/cases/*.jsonl (one case per line; see
 * test/corpus/README.md) must be refused with its exit code (2) and its expected substrings
 * (file:line:col, config path, what was expected), within its time bound, without a stack trace,
 * without a secret, and without leaving a process behind.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  type Case,
  CORPUS,
  closeHttpServers,
  type Outcome,
  positionOf,
  processesOf,
  RUNNERS,
} from "./runners.ts";

/** The corpus must not shrink below this (issue 19). */
const MIN_CASES = 300;
const STACK_TRACE = [
  /^\s+at .+:\d+:\d+\)?$/m,
  /\bnode:internal\//,
  /^\s+at (async )?[\w$.<>]+ \(/m,
];

function loadCases(): Case[] {
  const dir = join(CORPUS, "cases");
  const cases: Case[] = [];
  for (const name of readdirSync(dir)
    .filter((f) => f.endsWith(".jsonl"))
    .sort()) {
    readFileSync(join(dir, name), "utf8")
      .split("\n")
      .forEach((line, i) => {
        if (line.trim() === "" || line.trimStart().startsWith("//")) return;
        let c: Case;
        try {
          c = JSON.parse(line) as Case;
        } catch (err) {
          throw new Error(`cases/${name}:${i + 1}: not valid JSON (${(err as Error).message})`);
        }
        if (typeof c.id !== "string" || typeof c.kind !== "string" || !Array.isArray(c.expect))
          throw new Error(`cases/${name}:${i + 1}: a case needs "id", "kind" and "expect"`);
        cases.push({ ...c, source: `cases/${name}:${i + 1}` });
      });
  }
  return cases;
}

const cases = loadCases();
const root = mkdtempSync(join(tmpdir(), "inferbench-corpus-"));
after(async () => {
  await closeHttpServers();
  rmSync(root, { recursive: true, force: true });
});

function expand(s: string, o: Outcome): string {
  return s
    .replace(/\{at:([^}]+)\}/g, (_m, path: string) => {
      assert.ok(o.stackText !== undefined && o.stackName, `{at:${path}} needs a stack-backed case`);
      return positionOf(o.stackText, o.stackName, path);
    })
    .replaceAll("{file}", o.stackName ?? "{file}");
}

describe("bad-input corpus", () => {
  it(`holds at least ${MIN_CASES} cases with unique ids and known kinds`, () => {
    assert.ok(cases.length >= MIN_CASES, `${cases.length} cases`);
    const ids = new Set<string>();
    for (const c of cases) {
      assert.ok(!ids.has(c.id), `duplicate id ${c.id} (${c.source})`);
      ids.add(c.id);
      assert.ok(RUNNERS[c.kind], `${c.source}: no runner for kind "${c.kind}"`);
    }
  });

  let n = 0;
  for (const c of cases) {
    it(`${c.id} (${c.source})`, async () => {
      const tmp = join(root, String(n++));
      mkdirSync(tmp, { recursive: true });
      const before = new Set(processesOf({ ppid: process.pid }));
      const limit = c.timeoutMs ?? 10_000;
      const start = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const o = await Promise.race([
        RUNNERS[c.kind]!(c, { tmp }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`case ran past ${limit} ms`)), limit);
        }),
      ]).finally(() => clearTimeout(timer));
      const ms = performance.now() - start;
      const shown = `\n--- output ---\n${o.output}`;
      assert.ok(ms < limit, `took ${ms.toFixed(0)} ms`);
      // An http case's "exit" is its HTTP status (the runner gives -1 for a body not OpenAI-shaped).
      assert.equal(o.code, c.kind === "http" ? c.status : (c.exit ?? 2), `exit code${shown}`);
      for (const re of STACK_TRACE) assert.doesNotMatch(o.output, re, `a stack trace${shown}`);
      for (const e of c.expect) {
        const want = expand(e, o);
        assert.ok(o.output.includes(want), `missing ${JSON.stringify(want)}${shown}`);
      }
      for (const e of c.notExpect ?? [])
        assert.ok(!o.output.includes(e), `leaked ${JSON.stringify(e)}${shown}`);
      const left = processesOf({ ppid: process.pid }).filter((p) => !before.has(p));
      assert.deepEqual(left, [], "child processes left behind");
      if (o.pid !== undefined)
        assert.deepEqual(
          processesOf({ pgid: o.pid }),
          [],
          "the CLI's process group is still alive",
        );
    });
  }
});
