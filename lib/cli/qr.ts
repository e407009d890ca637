/**
 * A QR code for the terminal (`user add --qr`), drawn with half-block
 * characters, two modules a character row, by `@paulmillr/qr` at error
 * correction level M.
 *
 * @module
 */
import encodeQR from "@paulmillr/qr";

/**
 * The QR code of `text` as lines of `█ ▀ ▄` and spaces, light modules
 * drawn (for a dark terminal), with the quiet zone around it.
 *
 * @example
 * ```ts
 * import { terminalQr } from "./qr.ts";
 * terminalQr("nitrosocks://AQ").split("\n").length > 10; // true
 * ```
 */
export function terminalQr(text: string): string {
  return encodeQR(text, "ascii", { ecc: "medium" });
}
