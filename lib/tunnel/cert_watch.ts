/**
 * Reloads the server's TLS certificate when its files change: an ACME
 * client (certbot, acme.sh, lego) or `nitrosocks cert renew` replaces them
 * and new connections get the new certificate, without a restart and
 * without touching the tunnels already up.
 *
 * The directories holding the files are watched (ACME clients swap
 * symlinks and rename files into place, which a watch on the file itself
 * would miss); any change there, after a short quiet period, re-reads both
 * files, and a pair that differs from the one being served is applied. A
 * pair that does not load (a key written before its certificate, a broken
 * file) is reported and the previous one is kept; the next change tries
 * again.
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import { type FileWatch, watchFiles } from "../config/mod.ts";
import { describeError, type EventSink } from "../observe/mod.ts";

/** How long the files must be quiet before they are re-read (ms). */
export const CERT_RELOAD_QUIET_MS = 300;

/** A running watch; `close` stops it. */
export interface CertificateWatch {
  close(): void;
}

/** Options for {@linkcode watchCertificate}. */
export interface CertificateWatchOptions {
  /** The files `tls.cert` and `tls.key` name. */
  files: { cert: string; key: string };
  /** The pair served now (as read at start). */
  current: { certPem: string; keyPem: string };
  /** Serves a new pair; throws when it does not load. */
  apply(certPem: string, keyPem: string): void;
  events: EventSink;
  /** Quiet period before re-reading, default {@linkcode CERT_RELOAD_QUIET_MS}. */
  quietMs?: number;
}

/**
 * Watches the certificate and key files and applies a changed pair.
 *
 * @example
 * ```ts ignore
 * const watch = watchCertificate({ files, current: { certPem, keyPem }, apply, events });
 * watch.close();
 * ```
 */
export function watchCertificate(o: CertificateWatchOptions): CertificateWatch {
  let served = o.current;
  let closed = false;
  const reload = async () => {
    let certPem: string;
    let keyPem: string;
    try {
      [certPem, keyPem] = await Promise.all([
        Deno.readTextFile(o.files.cert),
        Deno.readTextFile(o.files.key),
      ]);
    } catch (e) {
      report("rejected", describeError(e));
      return;
    }
    if (closed || (certPem === served.certPem && keyPem === served.keyPem)) return;
    try {
      o.apply(certPem, keyPem);
    } catch (e) {
      report("rejected", describeError(e));
      return;
    }
    served = { certPem, keyPem };
    let detail = "new connections get it";
    try {
      const x = new X509Certificate(certPem);
      detail = `${x.subject.replace(/\n/g, ", ")}, valid until ${x.validTo}`;
    } catch {
      // node:tls loaded it; the description is only for the log
    }
    report("reloaded", detail);
  };
  const report = (action: "reloaded" | "rejected", detail: string) => {
    if (!closed) o.events.emit({ type: "certificate", action, file: o.files.cert, detail });
  };

  let watch: FileWatch;
  try {
    watch = watchFiles([o.files.cert, o.files.key], () => void reload(), {
      debounceMs: o.quietMs ?? CERT_RELOAD_QUIET_MS,
    });
  } catch (e) {
    report(
      "rejected",
      `cannot watch ${o.files.cert} and ${o.files.key} for changes (${
        describeError(e)
      }); restart the server after renewing`,
    );
    return { close() {} };
  }
  return {
    close() {
      closed = true;
      watch.close();
    },
  };
}
