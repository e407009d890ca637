/**
 * A real nginx on loopback for side-by-side tests: TLS (or, with `h2c`,
 * plain-TCP HTTP/2 as a fallback upstream) with a certificate
 * from `lib/pki`, HTTP/2 on, `server_tokens off`, serving one static page
 * (the decoy's, so bodies compare byte for byte), with the timers the test
 * chooses. Runs as one process (`master_process off`) in a temp directory;
 * `close` kills it and removes the directory.
 *
 * Exports: `startNginx(options)` → `Nginx` (`port`, `caPem`, `close()`).
 *
 * @module
 */
import { join } from "node:path";
import { generateCa, issueServerCert } from "../../lib/pki/mod.ts";
import { onTimeout, waitFor } from "./deadline.ts";

/** Options for {@linkcode startNginx}. */
export interface NginxOptions {
  /** The page served at `/` (index.html). */
  page: string;
  /** More files under the document root, by path (e.g. `img/1.png`). */
  files?: Record<string, Uint8Array>;
  /** `client_header_timeout`, seconds (nginx default 60). */
  headerTimeoutS?: number;
  /** `keepalive_timeout`, seconds (nginx default 75). */
  keepaliveTimeoutS?: number;
  /** Plain-TCP HTTP/2 with prior knowledge (`listen … http2` without ssl), as a fallback upstream. */
  h2c?: boolean;
}

/** A running nginx. */
export interface Nginx extends AsyncDisposable {
  port: number;
  /** The CA that signed its certificate (CN localhost, IP 127.0.0.1). */
  caPem: string;
  close(): Promise<void>;
}

/**
 * Starts nginx on 127.0.0.1 (a free port) and waits until it accepts.
 *
 * @example
 * ```ts ignore
 * await using nginx = await startNginx({ page: "<html></html>" });
 * ```
 */
export async function startNginx(opts: NginxOptions): Promise<Nginx> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-nginx-" });
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const ca = await generateCa("Test Issuing CA");
  const cert = await issueServerCert(ca, { dnsNames: ["localhost"], ips: ["127.0.0.1"] });
  await Deno.mkdir(join(dir, "html"));
  await Deno.writeTextFile(join(dir, "html", "index.html"), opts.page);
  for (const [path, bytes] of Object.entries(opts.files ?? {})) {
    await Deno.mkdir(join(dir, "html", path, ".."), { recursive: true });
    await Deno.writeFile(join(dir, "html", path), bytes);
  }
  await Deno.writeTextFile(join(dir, "cert.pem"), cert.certPem);
  await Deno.writeTextFile(join(dir, "key.pem"), cert.keyPem);
  const conf = `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 128; }
http {
  types { text/html html; text/css css; application/javascript js; image/png png; }
  default_type application/octet-stream;
  access_log off;
  server_tokens off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_header_timeout ${opts.headerTimeoutS ?? 60}s;
  keepalive_timeout ${opts.keepaliveTimeoutS ?? 75}s;
  server {
${
    opts.h2c === true
      ? `    listen 127.0.0.1:${port} http2;`
      : `    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;`
  }
    root ${dir}/html;
  }
}
`;
  await Deno.writeTextFile(join(dir, "nginx.conf"), conf);
  // Debian puts it in /usr/sbin, which a non-root PATH may lack.
  const nginx = await Deno.stat("/usr/sbin/nginx").then(() => "/usr/sbin/nginx", () => "nginx");
  const child = new Deno.Command(nginx, {
    args: ["-c", join(dir, "nginx.conf"), "-p", dir, "-e", join(dir, "error.log")],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      forget();
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.output().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
  const forget = onTimeout(close);
  try {
    await waitFor("nginx to accept connections", async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false;
      }
    }, 15_000);
  } catch (e) {
    await close();
    throw e;
  }
  return { port, caPem: ca.certPem, close, [Symbol.asyncDispose]: close };
}
