/**
 * Import layering, enforced. Walks every non-test module (.ts/.js outside test/ and
 * node_modules) and checks each relative module reference: static `import`/`export … from`
 * (type-only too: a type import still couples the layers), dynamic `import("…")`, `import("…")`
 * types, and `new URL("….ts|.js", import.meta.url)`. A URL literal is how code names a module it
 * imports through a variable, or runs as a worker or child process, so it counts as an arrow
 * too. Ranking, top to bottom (an arrow may point down or sideways, never up):
 *
 *   cli → experiments → targets → runner → loadgen/datagen/results → compose/kube/infra → stacks → lib
 *
 * Programs and tools outside the ranking:
 * - services/ (router, engine-sim) may import only lib/ and stacks/. The CLI's `serve` commands and
 *   the targets' launchers start them, so only cli/ and targets/ among the ranked folders may
 *   import services/.
 * - bin/ may import only cli/. Nothing ranked may reference bin/ (bin/ sits above cli/).
 * - testkit/ and bench/ may import anything but test/. rehearsal/ may import anything but test/
 *   and cli/.
 * - fixtures/ and files at the repository root (package.json) are data, not code. Anyone may
 *   read them.
 * A module in a folder that has no rule fails the test: rank the new folder here first.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

const RANK: Record<string, number> = {
  lib: 1,
  stacks: 2,
  compose: 3,
  kube: 3,
  infra: 3,
  loadgen: 4,
  datagen: 4,
  results: 4,
  runner: 5,
  targets: 6,
  experiments: 7,
  cli: 8,
};
/** Folders that hold data only: anyone may reference them. "" is the repository root. */
const DATA = new Set(["fixtures", ""]);
/** Git-ignored working folders (run output, scratch space): not part of the code. */
const SKIP_DIRS = new Set(["node_modules", "runs", "scratch", "tmp", "plan-out"]);

/**
 * Arrows that break the layering today, each with the fix it awaits. Remove an entry when you fix it. The
 * test fails on a violation that is not listed here, and also on a listed one that no longer
 * occurs, so this list can only shrink. The key is `from -> to`, without a line number, so an edit
 * elsewhere in the file does not break it.
 */
// Empty: no arrow points up. A new entry needs a reason and a plan to remove it.
const KNOWN_VIOLATIONS: readonly string[] = [];

interface ModuleRef {
  line: number;
  /** The specifier as written. */
  spec: string;
}

/** Relative module references in one source text (see the header for what counts). */
function moduleRefs(fileName: string, text: string): ModuleRef[] {
  const src = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const refs: ModuleRef[] = [];
  const add = (node: ts.Node, spec: string) => {
    if (!spec.startsWith(".")) return; // packages and node: builtins
    refs.push({ line: src.getLineAndCharacterOfPosition(node.getStart(src)).line + 1, spec });
  };
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier) {
      if (ts.isStringLiteral(n.moduleSpecifier)) add(n, n.moduleSpecifier.text);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const a = n.arguments[0];
      if (a && ts.isStringLiteralLike(a)) add(n, a.text);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) {
      const lit = n.argument.literal;
      if (ts.isStringLiteral(lit)) add(n, lit.text);
    } else if (ts.isNewExpression(n) && n.expression.getText(src) === "URL") {
      const [a, base] = n.arguments ?? [];
      if (a && ts.isStringLiteralLike(a) && base?.getText(src) === "import.meta.url") {
        if (/\.[cm]?[jt]s$/.test(a.text)) add(n, a.text);
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return refs;
}

/** Top-level folder of a repo-relative path ("" for a file at the root). */
function folderOf(rel: string): string {
  const parts = rel.split("/");
  return parts.length > 1 ? parts[0]! : "";
}

/** Why `from` must not reference `to` (repo-relative paths), or undefined when it may. */
function layerViolation(from: string, to: string): string | undefined {
  if (to.startsWith("../") || to === "..") return "points outside the repository";
  const a = folderOf(from);
  const b = folderOf(to);
  if (a === b || DATA.has(b)) return undefined;
  if (b === "test") return `${a} → test: only tests may import test/`;
  switch (a) {
    case "services":
      return b === "lib" || b === "stacks"
        ? undefined
        : `services → ${b}: services/ may import only lib/ and stacks/`;
    case "bin":
      return b === "cli" ? undefined : `bin → ${b}: bin/ may import only cli/`;
    case "testkit":
    case "bench":
      return undefined;
    case "rehearsal":
      return b === "cli" ? "rehearsal → cli: rehearsal/ may not import cli/" : undefined;
  }
  const ra = RANK[a];
  if (ra === undefined)
    return `${a}/ has no place in the layering: add it to test/architecture.test.ts`;
  if (b === "services") {
    return a === "cli" || a === "targets"
      ? undefined
      : `rank ${ra} ${a} → services: only cli/ and targets/ start services`;
  }
  const rb = RANK[b];
  if (rb === undefined) return `rank ${ra} ${a} → ${b}: ranked code may not import ${b}/`;
  return rb > ra ? `rank ${ra} ${a} → rank ${rb} ${b}` : undefined;
}

/** Non-test modules under the repository root, repo-relative with `/` separators. */
function sourceFiles(dir = ROOT, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith(".") || SKIP_DIRS.has(e.name)) continue;
    const p = join(dir, e.name);
    const rel = relative(ROOT, p).split(sep).join("/");
    if (e.isDirectory()) {
      if (rel !== "test") sourceFiles(p, out);
    } else if (/\.[cm]?[jt]s$/.test(e.name) && !/\.test\.[cm]?[jt]s$/.test(e.name)) {
      out.push(rel);
    }
  }
  return out;
}

interface Violation {
  key: string;
  message: string;
}

function repoViolations(): Violation[] {
  const found: Violation[] = [];
  for (const file of sourceFiles()) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const ref of moduleRefs(file, text)) {
      const to = relative(ROOT, resolve(ROOT, dirname(file), ref.spec))
        .split(sep)
        .join("/");
      const why = layerViolation(file, to);
      if (why)
        found.push({
          key: `${file} -> ${to}`,
          message: `${file}:${ref.line} imports ${to} (${why})`,
        });
    }
  }
  return found;
}

describe("import layering", () => {
  const found = repoViolations();

  it("no module imports up the ranking (beyond KNOWN_VIOLATIONS)", () => {
    const known = new Set(KNOWN_VIOLATIONS);
    const fresh = found.filter((v) => !known.has(v.key)).map((v) => v.message);
    assert.deepEqual(fresh, [], `layering violations:\n  ${fresh.join("\n  ")}`);
  });

  it("every KNOWN_VIOLATIONS entry still occurs (delete the ones you fixed)", () => {
    const seen = new Set(found.map((v) => v.key));
    const stale = KNOWN_VIOLATIONS.filter((k) => !seen.has(k));
    assert.deepEqual(stale, [], `fixed, remove from KNOWN_VIOLATIONS:\n  ${stale.join("\n  ")}`);
  });

  it("walks the whole tree: the ranked folders and their arrows are all seen", () => {
    const files = sourceFiles();
    for (const f of [
      "lib/errors.ts",
      "cli/main.ts",
      "bin/inferbench.js",
      "testkit/sse-server.ts",
    ]) {
      assert.ok(files.includes(f), `${f} not walked`);
    }
    assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("node_modules/")));
    assert.ok(!files.some((f) => f.endsWith(".test.ts")));
  });
});

describe("layering rules", () => {
  it("finds static, type-only, re-export, dynamic, import-type and URL references with lines", () => {
    const text = [
      'import { a } from "../lib/a.ts";',
      'import type { B } from "../stacks/b.ts";',
      'export * from "./c.ts";',
      "const m = await import('../cli/d.ts');",
      'let t: import("../results/e.ts").E;',
      'const w = new URL("../loadgen/worker.ts", import.meta.url);',
      'const dir = new URL("../results/runs/", import.meta.url);',
      'import { z } from "zod";',
      '// import { no } from "../cli/comment.ts";',
      "const s = \"import('../cli/string.ts')\";",
    ].join("\n");
    assert.deepEqual(moduleRefs("x/f.ts", text), [
      { line: 1, spec: "../lib/a.ts" },
      { line: 2, spec: "../stacks/b.ts" },
      { line: 3, spec: "./c.ts" },
      { line: 4, spec: "../cli/d.ts" },
      { line: 5, spec: "../results/e.ts" },
      { line: 6, spec: "../loadgen/worker.ts" },
    ]);
  });

  it("allows arrows down and sideways, flags arrows up with both ranks", () => {
    assert.equal(layerViolation("cli/a.ts", "lib/b.ts"), undefined);
    assert.equal(layerViolation("results/a.ts", "loadgen/b.ts"), undefined);
    assert.equal(layerViolation("compose/a.ts", "infra/b.ts"), undefined);
    assert.equal(layerViolation("lib/a.ts", "lib/sub/b.ts"), undefined);
    assert.equal(layerViolation("lib/a.ts", "stacks/b.ts"), "rank 1 lib → rank 2 stacks");
    assert.equal(layerViolation("runner/a.ts", "targets/b.ts"), "rank 5 runner → rank 6 targets");
    assert.equal(layerViolation("loadgen/a.ts", "runner/b.ts"), "rank 4 loadgen → rank 5 runner");
    assert.match(layerViolation("targets/a.ts", "bin/x.js") ?? "", /may not import bin/);
    assert.match(layerViolation("lib/a.ts", "testkit/x.ts") ?? "", /may not import testkit/);
  });

  it("applies the program and tool rules", () => {
    assert.equal(layerViolation("services/router/a.ts", "stacks/b.ts"), undefined);
    assert.match(layerViolation("services/router/a.ts", "cli/b.ts") ?? "", /only lib\/ and stacks/);
    assert.match(layerViolation("services/router/a.ts", "results/b.ts") ?? "", /only lib/);
    assert.equal(layerViolation("cli/a.ts", "services/router/b.ts"), undefined);
    assert.match(layerViolation("results/a.ts", "services/b.ts") ?? "", /only cli\/ and targets/);
    assert.equal(layerViolation("bin/x.js", "cli/main.ts"), undefined);
    assert.match(layerViolation("bin/x.js", "lib/a.ts") ?? "", /only cli/);
    assert.equal(layerViolation("bench/a.ts", "services/b.ts"), undefined);
    assert.match(layerViolation("bench/a.ts", "test/b.ts") ?? "", /only tests/);
    assert.match(layerViolation("testkit/a.ts", "test/b.ts") ?? "", /only tests/);
    assert.equal(layerViolation("rehearsal/a.ts", "experiments/b.ts"), undefined);
    assert.match(layerViolation("rehearsal/a.ts", "cli/b.ts") ?? "", /may not import cli/);
    assert.equal(layerViolation("results/a.ts", "fixtures/x.json"), undefined);
    assert.equal(layerViolation("cli/a.ts", "package.json"), undefined);
    assert.match(layerViolation("newdir/a.ts", "lib/b.ts") ?? "", /no place in the layering/);
    assert.equal(layerViolation("lib/a.ts", "../shared/x.ts"), "points outside the repository");
  });
});
