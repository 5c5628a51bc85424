/**
 * The small interface the CLI drives Pulumi through, and its real implementation on the
 * Automation API with an **inline program**: `program()` from infra/program.ts, the same function
 * infra/index.ts runs under `pulumi up`. The SDK serves the language runtime from this process, so
 * no Node language host is needed (a bare Pulumi CLI runs it), and what `inferbench run` drives is
 * what a hand `pulumi up` deploys.
 *
 * Each run gets its own workspace directory (results/runs/<run-id>/pulumi/, ignored by git) and a
 * Pulumi stack named after the run id. The run's config — including the generated keys as secrets
 * — therefore lives in that directory and never in the committed stacks/Pulumi.<stack>.yaml files.
 */
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type DetachedRunner, detachedRunner } from "./pulumi-process.ts";

export interface ConfigEntry {
  value: string;
  secret?: boolean;
}

export interface OpOptions {
  /** First abort: one SIGINT to Pulumi (graceful cancel). */
  signal?: AbortSignal;
  /** Hard abort (second Ctrl-C): a second SIGINT, Pulumi stops at once. */
  hardSignal?: AbortSignal;
  onOutput?: (line: string) => void;
  /** The operation's resource changes by kind (`same`, `create`, `update`, `delete`, …). */
  onChanges?: (changes: Record<string, number>) => void;
}

export interface StackOps {
  readonly name: string;
  getConfig(key: string): Promise<ConfigEntry | undefined>;
  setConfig(entries: Record<string, ConfigEntry>): Promise<void>;
  up(opts?: OpOptions): Promise<Record<string, unknown>>;
  outputs(): Promise<Record<string, unknown>>;
  cancel(): Promise<void>;
  refresh(opts?: OpOptions & { clearPendingCreates?: boolean }): Promise<void>;
  destroy(opts?: OpOptions & { continueOnError?: boolean }): Promise<void>;
  /** Removes the (empty) stack from the backend after a successful destroy. */
  remove(): Promise<void>;
}

export interface AutomationApi {
  /** Creates or selects the stack `stackName` in `workDir`. */
  stack(workDir: string, stackName: string): Promise<StackOps>;
  /**
   * A config value of an existing stack of this repository's project (stacks/Pulumi.<stack>.yaml),
   * decrypted: how a `pulumi config set --secret hfToken` reaches a run, whose own per-run stack
   * cannot decrypt another stack's ciphertext. Undefined when the key is not set.
   */
  readProjectConfig?(stackName: string, key: string): Promise<string | undefined>;
}

const INFRA_DIR = fileURLToPath(new URL(".//", import.meta.url));
/** The repository root: Pulumi.yaml with `stackConfigDir: stacks`. */
export const REPO_DIR = resolve(INFRA_DIR, "..");
const PROJECT_NAME = "inferbench";

/** An inline program: what the engine runs in this process. Its return value is the outputs. */
export type InlineProgram = () => Promise<Record<string, unknown>>;

/** infra/program.ts's program(), loaded when the engine asks (it pulls in @pulumi/gcp). */
export const kitProgram: InlineProgram = async () => {
  const { program } = await import("./program.ts");
  const outs: Record<string, unknown> = program();
  return Object.fromEntries(Object.entries(outs).filter(([, v]) => v !== undefined));
};

/**
 * The engine starts dynamic providers (ComposeDeployment) as the plugin
 * `pulumi-resource-pulumi-nodejs` found on PATH. The copy inside @pulumi/pulumi resolves the SDK
 * from the working directory and exits 0 when it cannot, so the workspace gets its own, with the
 * absolute paths of this installation's SDK and of tsx (the provider imports TypeScript).
 */
export function writeDynamicProviderShim(dir: string): string {
  const req = createRequire(import.meta.url);
  const script = req.resolve("@pulumi/pulumi/cmd/dynamic-provider");
  const tsx = import.meta.resolve("tsx");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "pulumi-resource-pulumi-nodejs");
  writeFileSync(
    file,
    `#!/bin/sh\n# written by inferbench (infra/automation.ts): the dynamic-provider host for this workspace\nexec ${JSON.stringify(process.execPath)} --import ${JSON.stringify(tsx)} ${JSON.stringify(script)} "$@"\n`,
  );
  chmodSync(file, 0o755);
  return dir;
}

type Auto = typeof import("@pulumi/pulumi").automation;

/**
 * A PulumiCommand whose processes run detached (infra/pulumi-process.ts). It replaces the
 * SDK's `run` (the one method the workspace calls), keeping what that method adds: the
 * non-interactive flag, the CLI's folder first on PATH, PULUMI_AUTOMATION_API.
 */
async function detachedPulumiCommand(auto: Auto, runner: DetachedRunner) {
  const real = await auto.PulumiCommand.get();
  const internals = auto as unknown as {
    CommandResult: new (stdout: string, stderr: string, code: number) => unknown;
    createCommandError: (r: unknown) => Error;
  };
  const run = async (
    args: string[],
    cwd: string,
    env: Record<string, string>,
    onOutput?: (s: string) => void,
    onError?: (s: string) => void,
    signal?: AbortSignal,
  ) => {
    const argv = args.includes("--non-interactive") ? args : [...args, "--non-interactive"];
    const extra: Record<string, string> = { ...env, PULUMI_AUTOMATION_API: "true" };
    if (isAbsolute(real.command))
      extra.PATH = `${dirname(real.command)}${delimiter}${env.PATH ?? process.env.PATH ?? ""}`;
    const r = await runner.run(real.command, argv, {
      cwd,
      env: extra,
      ...(onOutput ? { onOutput } : {}),
      ...(onError ? { onError } : {}),
      ...(signal ? { signal } : {}),
    });
    const result = new internals.CommandResult(r.stdout, r.stderr, r.code);
    if (r.code !== 0) throw internals.createCommandError(result);
    return result;
  };
  return Object.create(real, { run: { value: run } }) as typeof real;
}

/** Real Automation API. Loaded lazily so that tests and `--help` never touch it. */
export function localAutomation(
  envVars: Record<string, string> = {},
  /** Where the user's stacks live (Pulumi.yaml); the repository unless a test says otherwise. */
  projectDir = REPO_DIR,
  program: InlineProgram = kitProgram,
): AutomationApi {
  const runner = detachedRunner();
  return {
    async readProjectConfig(stackName, key) {
      const { automation: auto } = await import("@pulumi/pulumi");
      const stack = await auto.LocalWorkspace.selectStack(
        { stackName, workDir: projectDir },
        { workDir: projectDir, pulumiCommand: await detachedPulumiCommand(auto, runner), envVars },
      );
      try {
        return (await stack.getConfig(`inferbench:${key}`)).value;
      } catch (err) {
        if (/not found|missing/i.test((err as Error).message)) return undefined;
        throw err;
      }
    },
    async stack(workDir, stackName) {
      mkdirSync(workDir, { recursive: true });
      const { automation: auto } = await import("@pulumi/pulumi");
      const shimDir = writeDynamicProviderShim(join(workDir, "bin"));
      const stack = await auto.LocalWorkspace.createOrSelectStack(
        { stackName, projectName: PROJECT_NAME, program },
        {
          workDir,
          projectSettings: {
            name: PROJECT_NAME,
            runtime: "nodejs",
            description: "inferbench run workspace (generated; the program runs inline)",
          },
          pulumiCommand: await detachedPulumiCommand(auto, runner),
          envVars: {
            ...envVars,
            PATH: `${shimDir}${delimiter}${envVars.PATH ?? process.env.PATH ?? ""}`,
          },
        },
      );
      /** Runs an operation with a hard abort wired to a second SIGINT (and unwired after). */
      const withHard = async <T>(o: OpOptions, f: () => Promise<T>): Promise<T> => {
        const onHard = () => runner.interruptAgain();
        o.hardSignal?.addEventListener("abort", onHard, { once: true });
        try {
          return await f();
        } finally {
          o.hardSignal?.removeEventListener("abort", onHard);
        }
      };
      const flat = (outs: Record<string, { value: unknown }>) =>
        Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, v.value]));
      return {
        name: stackName,
        async getConfig(key) {
          try {
            const v = await stack.getConfig(`inferbench:${key}`);
            return { value: v.value, secret: v.secret ?? false };
          } catch {
            return undefined;
          }
        },
        async setConfig(entries) {
          const all: Record<string, { value: string; secret: boolean }> = {};
          for (const [k, e] of Object.entries(entries)) {
            all[k.includes(":") ? k : `inferbench:${k}`] = {
              value: e.value,
              secret: e.secret ?? false,
            };
          }
          await stack.setAllConfig(all);
        },
        async up(o = {}) {
          const r = await withHard(o, () =>
            stack.up({
              ...(o.onOutput ? { onOutput: o.onOutput } : {}),
              ...(o.signal ? { signal: o.signal } : {}),
            }),
          );
          o.onChanges?.(r.summary.resourceChanges ?? {});
          return flat(r.outputs);
        },
        async outputs() {
          return flat(await stack.outputs());
        },
        async cancel() {
          await stack.cancel();
        },
        async refresh(o = {}) {
          const r = await stack.refresh({
            ...(o.onOutput ? { onOutput: o.onOutput } : {}),
            ...(o.clearPendingCreates ? { clearPendingCreates: true } : {}),
          });
          o.onChanges?.(r.summary.resourceChanges ?? {});
        },
        async destroy(o = {}) {
          const r = await stack.destroy({
            ...(o.onOutput ? { onOutput: o.onOutput } : {}),
            ...(o.continueOnError ? { continueOnError: true } : {}),
          });
          o.onChanges?.(r.summary.resourceChanges ?? {});
        },
        async remove() {
          await stack.workspace.removeStack(stackName);
        },
      };
    },
  };
}
