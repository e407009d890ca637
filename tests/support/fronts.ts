/**
 * Real fronts for the end-to-end tests: an nginx that terminates TLS and
 * proxies one path as a WebSocket (serving other paths itself), and an
 * HAProxy in TCP mode that sends the PROXY v2 header. Each runs as its own
 * foreground process with a temporary prefix and configuration, on
 * loopback ports; as root the process drops to `nobody` (setpriv), so it
 * runs unprivileged either way.
 *
 * Exports:
 * - `startNginx(opts)` → `Nginx` `{ port, prefix, reload(), close() }`
 * - `startHaproxy(opts)` → `Front` `{ port, close() }`
 * - `hasProgram(name)`: whether it is installed
 *
 * @module
 */
import { join } from "node:path";
import { onTimeout, step, withDeadline } from "./deadline.ts";
import { spawnWithDeadline } from "./process.ts";

/** A running front. */
export interface Front extends AsyncDisposable {
  /** The loopback port clients connect to. */
  port: number;
  /** Its directory (configuration, logs). */
  prefix: string;
  close(): Promise<void>;
}

/** A running nginx. */
export interface Nginx extends Front {
  /** `nginx -s reload`: new workers take new connections, old ones finish theirs. */
  reload(): Promise<void>;
  /** The error log so far (for failure messages). */
  errorLog(): Promise<string>;
}

const IS_ROOT = Deno.uid() === 0;

/** True when `name` runs (`name -v` exits). */
export async function hasProgram(name: string): Promise<boolean> {
  try {
    await new Deno.Command(name, { args: ["-v"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

function freePort(hostname = "127.0.0.1"): number {
  const l = Deno.listen({ hostname, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The command line, dropping root to nobody with setpriv. */
function unprivileged(cmd: string, args: string[]): [string, string[]] {
  if (!IS_ROOT) return [cmd, args];
  return [
    "setpriv",
    ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", cmd, ...args],
  ];
}

/** A directory the front's user may write in (chowned to nobody as root). */
async function makePrefix(what: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `nitrosocks-${what}-` });
  await Deno.chmod(dir, 0o755);
  return dir;
}

async function handOver(dir: string): Promise<void> {
  if (!IS_ROOT) return;
  const nobody = 65534;
  const walk = async (p: string) => {
    await Deno.chown(p, nobody, nobody);
    const st = await Deno.stat(p);
    if (st.isDirectory) {
      for await (const e of Deno.readDir(p)) await walk(join(p, e.name));
    }
  };
  await walk(dir);
}

async function waitListening(hostname: string, port: number, what: string): Promise<void> {
  await step(
    `${what} to listen on ${hostname}:${port}`,
    (async () => {
      for (;;) {
        try {
          const c = await Deno.connect({ hostname, port });
          c.close();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })(),
  );
}

/** A long-running child: killed by `close`, or when the test's budget runs out. */
function spawnFront(cmd: string, args: string[]) {
  const [c, a] = unprivileged(cmd, args);
  const child = new Deno.Command(c, { args: a, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const kill = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
  };
  const forget = onTimeout(kill);
  return {
    status,
    stderr,
    get exited() {
      return exited;
    },
    async stop() {
      forget();
      kill();
      await withDeadline(status, 10_000, `${cmd} to exit`);
      await stderr.catch(() => "");
    },
  };
}

/** Options for {@linkcode startNginx}. */
export interface NginxOptions {
  /** Certificate chain and key nginx serves (PEM). */
  certPem: string;
  keyPem: string;
  /** The path proxied as a WebSocket, e.g. "/nitro/ws". */
  wsPath: string;
  /** The NitroSocks server's plain-HTTP ws listener on 127.0.0.1. */
  upstreamPort: number;
  /** Served by nginx itself at "/". */
  indexHtml: string;
  /**
   * `worker_shutdown_timeout`: how long an old worker keeps proxied
   * connections after a reload (default 1 s, so a reload drops them).
   */
  workerShutdownTimeout?: string;
}

/**
 * Starts nginx (`-p prefix -c conf`, `daemon off`, one worker) on a free
 * loopback port: TLS with the given certificate, `wsPath` proxied with
 * Upgrade to the NitroSocks server, everything else served from its own
 * root.
 */
export async function startNginx(opts: NginxOptions): Promise<Nginx> {
  const prefix = await makePrefix("nginx");
  const port = freePort();
  await Deno.mkdir(join(prefix, "www"));
  await Deno.mkdir(join(prefix, "tmp"));
  await Deno.writeTextFile(join(prefix, "www", "index.html"), opts.indexHtml);
  await Deno.writeTextFile(join(prefix, "cert.pem"), opts.certPem);
  await Deno.writeTextFile(join(prefix, "key.pem"), opts.keyPem, { mode: 0o600 });
  const conf = join(prefix, "nginx.conf");
  await Deno.writeTextFile(
    conf,
    `daemon off;
master_process on;
worker_processes 1;
worker_shutdown_timeout ${opts.workerShutdownTimeout ?? "1s"};
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log info;
events { worker_connections 256; }
http {
  access_log ${prefix}/access.log;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  default_type text/html;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port} ssl;
    server_name localhost;
    ssl_certificate ${prefix}/cert.pem;
    ssl_certificate_key ${prefix}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = ${opts.wsPath} {
      proxy_pass http://127.0.0.1:${opts.upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
      proxy_buffering off;
    }
    location / { root ${prefix}/www; }
  }
}
`,
  );
  await handOver(prefix);
  const base = ["-p", prefix, "-c", conf, "-e", join(prefix, "error.log")];
  const proc = spawnFront("nginx", base);
  const errorLog = () => Deno.readTextFile(join(prefix, "error.log")).catch(() => "");
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      await proc.stop();
      await Deno.remove(prefix, { recursive: true });
    })();
  try {
    await Promise.race([
      waitListening("127.0.0.1", port, "nginx"),
      proc.status.then(async () => {
        throw new Error(`nginx exited: ${await proc.stderr} ${await errorLog()}`);
      }),
    ]);
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
  return {
    port,
    prefix,
    async reload() {
      const [c, a] = unprivileged("nginx", [...base, "-s", "reload"]);
      const out = await spawnWithDeadline(c, { args: a, stdout: "piped", stderr: "piped" }, 10_000)
        .output;
      if (out.code !== 0) {
        throw new Error(`nginx -s reload failed: ${new TextDecoder().decode(out.stderr)}`);
      }
    },
    errorLog,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Options for {@linkcode startHaproxy}. */
export interface HaproxyOptions {
  /** Where HAProxy listens: "127.0.0.1" (default) or "::1". */
  hostname?: string;
  /** The NitroSocks server on 127.0.0.1. */
  upstreamPort: number;
  /** More servers on 127.0.0.1 (a fleet): connections go round-robin over all of them. */
  moreUpstreamPorts?: number[];
}

/**
 * Starts HAProxy in TCP mode (`haproxy -f conf -db`, foreground) on a free
 * loopback port, forwarding to the server (or round-robin to the servers)
 * with `send-proxy-v2`.
 */
export async function startHaproxy(opts: HaproxyOptions): Promise<Front> {
  const prefix = await makePrefix("haproxy");
  const hostname = opts.hostname ?? "127.0.0.1";
  const port = freePort(hostname);
  const bind = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  const conf = join(prefix, "haproxy.cfg");
  await Deno.writeTextFile(
    conf,
    `global
  maxconn 256
defaults
  mode tcp
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend tunnel
  bind ${bind}
  default_backend nitrosocks
backend nitrosocks
  balance roundrobin
${
      [opts.upstreamPort, ...(opts.moreUpstreamPorts ?? [])]
        .map((p, i) => `  server s${i + 1} 127.0.0.1:${p} send-proxy-v2\n`).join("")
    }`,
  );
  await handOver(prefix);
  const proc = spawnFront("haproxy", ["-f", conf, "-db"]);
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      await proc.stop();
      await Deno.remove(prefix, { recursive: true });
    })();
  try {
    await Promise.race([
      waitListening(hostname, port, "haproxy"),
      proc.status.then(async () => {
        throw new Error(`haproxy exited: ${await proc.stderr}`);
      }),
    ]);
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
  return { port, prefix, close, [Symbol.asyncDispose]: close };
}
