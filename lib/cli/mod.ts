/**
 * Subcommand dispatch. Each command module exports `{ name, summary, usage,
 * run(args) }`; `run` resolves to the process exit code.
 *
 * @module
 */
import { UsageError } from "./args.ts";
import { explainPermissionError } from "./permissions.ts";

/** A subcommand. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

export const VERSION = "0.1.0";

async function loadCommands(): Promise<Command[]> {
  const mods = await Promise.all([
    import("./commands.ts"),
  ]);
  return mods.flatMap((m) => m.commands);
}

function topUsage(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "NitroSocks: a secure tunnel that keeps traffic private even when TLS is intercepted.",
    "",
    "Usage: nitrosocks <command> [options]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run 'nitrosocks <command> --help' for a command's options.",
  ].join("\n");
}

/** Runs the command line; resolves to the exit code. */
export async function runCli(args: string[]): Promise<number> {
  const commands = await loadCommands();
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(topUsage(commands));
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    console.log(`nitrosocks ${VERSION}`);
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (cmd === undefined) {
    console.error(`nitrosocks: unknown command "${name}"\n\n${topUsage(commands)}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(cmd.usage);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`nitrosocks ${cmd.name}: ${e.message}\n\n${cmd.usage}`);
      return 2;
    }
    const message = explainPermissionError(e) ?? (e instanceof Error ? e.message : String(e));
    console.error(`nitrosocks ${cmd.name}: ${message}`);
    return 1;
  }
}
