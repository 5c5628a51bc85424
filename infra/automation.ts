/**
 * The small interface the CLI drives Pulumi through, and its real implementation on the
 * Automation API with a local program (the same code path as `pulumi up` on infra/).
 *
 * Each run gets its own workspace directory (results/runs/<run-id>/pulumi/, ignored by git) with a
 * generated Pulumi.yaml pointing `main` at infra/, and a Pulumi stack named after the run id. The
 * run's config — including the generated keys as secrets — therefore lives in that directory and
 * never in the committed stacks/Pulumi.<stack>.yaml files.
 */
import { mkdirSync } from "node:fs";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";

export interface ConfigEntry {
  value: string;
  secret?: boolean;
}

export interface OpOptions {
  signal?: AbortSignal;
  onOutput?: (line: string) => void;
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
}

const INFRA_DIR = fileURLToPath(new URL(".//", import.meta.url));

export function projectSettingsFor(workDir: string) {
  return {
    name: "inferbench",
    runtime: {
      name: "nodejs",
      options: { typescript: false, nodeargs: "--import tsx", packagemanager: "npm" },
    },
    main: relative(workDir, INFRA_DIR) || ".",
    description: "inferbench run workspace (generated)",
  };
}

/** Real Automation API. Loaded lazily so that tests and `--help` never touch it. */
export function localAutomation(envVars: Record<string, string> = {}): AutomationApi {
  return {
    async stack(workDir, stackName) {
      mkdirSync(workDir, { recursive: true });
      const { automation: auto } = await import("@pulumi/pulumi");
      const stack = await auto.LocalWorkspace.createOrSelectStack(
        { stackName, workDir },
        {
          workDir,
          projectSettings: projectSettingsFor(workDir) as never,
          // The dynamic deploy provider runs in its own node process and must load TypeScript.
          envVars: { NODE_OPTIONS: "--import tsx", ...envVars },
        },
      );
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
          const r = await stack.up({
            ...(o.onOutput ? { onOutput: o.onOutput } : {}),
            ...(o.signal ? { signal: o.signal } : {}),
          });
          return flat(r.outputs);
        },
        async outputs() {
          return flat(await stack.outputs());
        },
        async cancel() {
          await stack.cancel();
        },
        async refresh(o = {}) {
          await stack.refresh({
            ...(o.onOutput ? { onOutput: o.onOutput } : {}),
            ...(o.clearPendingCreates ? { clearPendingCreates: true } : {}),
          });
        },
        async destroy(o = {}) {
          await stack.destroy({
            ...(o.onOutput ? { onOutput: o.onOutput } : {}),
            ...(o.continueOnError ? { continueOnError: true } : {}),
          });
        },
        async remove() {
          await stack.workspace.removeStack(stackName);
        },
      };
    },
  };
}
