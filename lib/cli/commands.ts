/**
 * The list of subcommands. Each lives in its own module.
 *
 * @module
 */
import type { Command } from "./mod.ts";
import { initCommand } from "./init.ts";
import { certCommand } from "./cert_cmd.ts";
import { userCommand } from "./user.ts";
import { serverCommand } from "./server_cmd.ts";
import { clientCommand } from "./client_cmd.ts";
import { profileCommand } from "./profile_cmd.ts";
import { demoCommand } from "./demo.ts";
import { relayCommand } from "./relay_cmd.ts";
import { benchCommand } from "./bench.ts";
import { kickCommand, statusCommand } from "./admin_cmd.ts";

export const commands: Command[] = [
  initCommand,
  certCommand,
  userCommand,
  serverCommand,
  statusCommand,
  kickCommand,
  clientCommand,
  profileCommand,
  relayCommand,
  demoCommand,
  benchCommand,
];
