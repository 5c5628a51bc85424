/** `inferbench serve router`: the router's own command (flags and action in services/router/options.ts). */
import type { Command } from "commander";
import { configureRouterCommand } from "../../services/router/options.ts";

export function registerServeRouter(serve: Command): void {
  configureRouterCommand(serve.command("router"));
}
