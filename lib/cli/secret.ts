/**
 * Reading a password without putting it on the command line: from the
 * terminal with echo off, or the first line of standard input when it is not
 * a terminal (scripts: `printf '%s\n' "$PW" | nitrosocks user add …`).
 *
 * @module
 */
import { UsageError } from "./args.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Longest password accepted (the profile schema's bound). */
export const MAX_PASSWORD_CHARS = 1024;

async function readLineRaw(prompt: string): Promise<string> {
  await Deno.stderr.write(encoder.encode(prompt));
  Deno.stdin.setRaw(true);
  const chars: string[] = [];
  const buf = new Uint8Array(64);
  try {
    for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      const text = decoder.decode(buf.subarray(0, n));
      for (const c of text) {
        if (c === "\r" || c === "\n") return chars.join("");
        if (c === "\u0003") throw new UsageError("Password entry interrupted");
        if (c === "\u007f" || c === "\b") chars.pop();
        else if (c >= " ") chars.push(c);
      }
    }
    return chars.join("");
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
}

/** Standard input read so far but not yet taken, and its one reader (never cancelled). */
let stdinReader: ReadableStreamDefaultReader<Uint8Array> | undefined;
let stdinPending = new Uint8Array(0);

/**
 * The next line of standard input (without its end of line), at most
 * `limit` bytes; what follows stays for the next call, so a link and then a
 * password can be piped in one after the other.
 */
async function readFirstLine(limit = 4 * MAX_PASSWORD_CHARS + 2): Promise<string> {
  stdinReader ??= Deno.stdin.readable.getReader();
  for (;;) {
    const nl = stdinPending.indexOf(10);
    if (nl >= 0 || stdinPending.length > limit) {
      const end = nl >= 0 ? nl : stdinPending.length;
      const line = stdinPending.subarray(0, end);
      stdinPending = stdinPending.slice(Math.min(end + 1, stdinPending.length));
      return decoder.decode(line).replace(/\r$/, "");
    }
    const { value, done } = await stdinReader.read();
    if (done) {
      const rest = stdinPending;
      stdinPending = new Uint8Array(0);
      return decoder.decode(rest).replace(/\r$/, "");
    }
    const next = new Uint8Array(stdinPending.length + value.length);
    next.set(stdinPending);
    next.set(value, stdinPending.length);
    stdinPending = next;
  }
}

function check(pw: string): string {
  if (pw.length === 0) throw new UsageError("Empty password: type one, or pipe it on stdin");
  if (pw.length > MAX_PASSWORD_CHARS) {
    throw new UsageError(`Password too long: at most ${MAX_PASSWORD_CHARS} characters`);
  }
  return pw;
}

/**
 * Reads a password: prompts on a terminal (echo off), asking twice when
 * `confirm`; otherwise takes the first line of standard input. Throws
 * `UsageError` for an empty or mismatched password.
 */
export async function readPassword(
  what: string,
  opts: { confirm?: boolean } = {},
): Promise<string> {
  if (!Deno.stdin.isTerminal()) return check(await readFirstLine());
  const pw = check(await readLineRaw(`${what}: `));
  if (opts.confirm) {
    const again = await readLineRaw(`${what} again: `);
    if (again !== pw) throw new UsageError("The passwords do not match: run the command again");
  }
  return pw;
}

/** Longest share link read from standard input (characters). */
const MAX_LINK_CHARS = 32 * 1024;

/**
 * Reads a share link from standard input, never from the command line
 * (where `ps` shows it): on a terminal it asks for it with echo off (the
 * link is a secret), otherwise it takes the first line. Throws `UsageError`
 * when nothing was given.
 */
export async function readLink(): Promise<string> {
  const line = Deno.stdin.isTerminal()
    ? await readLineRaw("Paste the nitrosocks:// link (not shown), then Enter: ")
    : await readFirstLine(MAX_LINK_CHARS);
  const link = line.trim();
  if (link === "") {
    throw new UsageError("No link on standard input: paste it, or pipe it in (… | nitrosocks …)");
  }
  return link;
}
