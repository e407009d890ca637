/**
 * The list of subcommands. Each lives in its own module.
 *
 * @module
 */
import type { Command } from "./mod.ts";

export const commands: Command[] = [];
