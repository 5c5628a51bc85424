/** `inferbench serve engine-sim`: engine-sim's own command (flags and action in services/engine-sim/options.ts). */
import type { Command } from "commander";
import { configureEngineSimCommand } from "../../services/engine-sim/options.ts";

export function registerServeEngineSim(serve: Command): void {
  configureEngineSimCommand(serve.command("engine-sim"));
}
