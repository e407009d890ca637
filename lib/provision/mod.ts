/**
 * Provisioning: makes a server directory (`initServerDir`) and manages its
 * users (`addUser`, `listUsers`, `removeUser`). The file-making behind
 * `nitrosocks init` and `nitrosocks user`, usable from tests, the benchmark
 * and other programs; the command line only parses arguments and prints.
 *
 * @example
 * ```ts
 * import { addUser, initServerDir } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir, { listen: "127.0.0.1:8443", name: "nitro.example" });
 * const { profilePath } = await addUser("alice", { dir, out: `${dir}/alice.yml` });
 * console.log(profilePath.endsWith("alice.yml")); // true
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
export { writeNewFile } from "./_files.ts";
export {
  INIT_FILES,
  type InitOptions,
  type InitResult,
  initServerDir,
  neutralCaName,
  type RenewOptions,
  type RenewResult,
  renewServerCert,
} from "./init.ts";
export {
  addUser,
  type AddUserOptions,
  type AddUserResult,
  checkUserName,
  type ClientAddress,
  clientAddress,
  type IssueTokenOptions,
  issueUserToken,
  listUsers,
  removeUser,
  setUser,
} from "./users.ts";
export { ProvisionInputError } from "./errors.ts";
