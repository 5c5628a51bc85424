/**
 * The `inferbench` program: one file per command under cli/commands/, each registering itself.
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { registerPlan } from "./commands/plan.ts";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command("inferbench")
    .description(
      "Provision GPUs, deploy a baseline or managed vLLM stack, drive GenAI-Perf-compatible load,\n" +
        "bring the results home, compare the arms, and tear everything down.",
    )
    .version(pkg.version)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str) });
  registerPlan(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}
