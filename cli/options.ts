/** Option pieces several commands share: parsed once, validated by zod, errors as UserError. */

import type { Command } from "commander";
import { z } from "zod";
import { parseFlags } from "../lib/flags.ts";

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Adds `--stack` and repeatable `--set`. */
export function addStackOptions(cmd: Command): Command {
  return cmd
    .requiredOption("-s, --stack <name>", "stack to use: stacks/Pulumi.<name>.yaml")
    .option(
      "--set <path=value>",
      "override a config value for this command, e.g. --set mode=baseline --set models[0].replicas=1 (repeatable; values read as YAML)",
      collect,
      [],
    );
}

/** Validates commander's parsed options with a zod schema; errors name the flag. */
export const parseOptions = parseFlags;

export const stackOptionsSchema = z.object({
  stack: z.string().min(1),
  set: z.array(z.string()).default([]),
});
