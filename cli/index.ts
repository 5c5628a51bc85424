/**
 * The `inferbench` program: one file per command under cli/commands/, each registering itself.
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { registerCompare } from "./commands/compare.ts";
import { registerDestroy } from "./commands/destroy.ts";
import { registerExperiment } from "./commands/experiment.ts";
import { registerImport } from "./commands/import.ts";
import { registerPlan } from "./commands/plan.ts";
import { registerProfile } from "./commands/profile.ts";
import { registerReport } from "./commands/report.ts";
import { registerRun } from "./commands/run.ts";
import { registerRunner } from "./commands/runner.ts";
import { registerServeEngineSim } from "./commands/serve-engine-sim.ts";
import { registerServeRouter } from "./commands/serve-router.ts";
import { registerStatus } from "./commands/status.ts";
import { registerUpload } from "./commands/upload.ts";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command("inferbench")
    .description(
      "Provision GPUs, deploy a baseline or managed vLLM stack, drive GenAI-Perf-compatible load, bring the results home, compare the arms, and tear everything down.\n\n" +
        "Start here: `inferbench run --stack local` runs both arms on emulated engines (no GPU).",
    )
    .version(pkg.version)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str) });
  registerPlan(program);
  registerRun(program);
  registerExperiment(program);
  registerRunner(program);
  registerCompare(program);
  registerReport(program);
  registerImport(program);
  registerProfile(program);
  registerDestroy(program);
  registerStatus(program);
  registerUpload(program);
  const serve = program
    .command("serve")
    .description("Run one of the kit's own servers: the engine emulator or the router.");
  registerServeEngineSim(serve);
  registerServeRouter(serve);
  const exitOverrideAll = (cmd: Command) => {
    cmd.exitOverride();
    // The command list shows one line per command: the description's first sentence.
    if (!cmd.summary())
      cmd.summary(
        cmd
          .description()
          .replace(/\s+/g, " ")
          .split(/(?<=[.:])\s/)[0]!
          .replace(/[.:]$/, ""),
      );
    for (const sub of cmd.commands) exitOverrideAll(sub);
  };
  exitOverrideAll(program);
  return program;
}
