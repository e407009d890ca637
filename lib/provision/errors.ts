/**
 * The error provisioning functions throw for bad input.
 *
 * @module
 */

/**
 * A value given to a provisioning function is malformed: a user name, an
 * address, a DNS name or a route pattern. The message quotes the value and
 * says what was expected; the command line shows it as a usage error.
 *
 * @example
 * ```ts
 * import { ProvisionInputError } from "./errors.ts";
 * const e = new ProvisionInputError('Invalid user name "a/b": expected 1-64 of A-Z a-z 0-9 . _ -');
 * console.log(e instanceof TypeError); // true
 * ```
 */
export class ProvisionInputError extends TypeError {
  /** `message` quotes the value and says what was expected. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProvisionInputError";
  }
}
