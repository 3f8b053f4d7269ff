/**
 * The client's Node transports for the Better Auth session path, which runs
 * once per request of the app:
 *
 * - {@link nodeHttpPool}: for an `http:` sessiond, `GET`s on a pool of
 *   kept-alive `node:net` sockets, written as one string and read by a
 *   minimal HTTP/1.1 answer parser (status, `Content-Length` or chunked
 *   body, `Connection`, `Set-Cookie`, `Retry-After`). `node:http`'s
 *   `ClientRequest`/`IncomingMessage` machinery and the `Response` made
 *   around it were most of the Node process's own cost of a lookup.
 * - {@link nodeFetch}: a `fetch` made with `node:http`/`node:https` and a
 *   keep-alive agent (Node's global `fetch`, undici, costs more per call),
 *   for an `https:` sessiond. Only what the client reads of a `Response` is
 *   provided: `status`, `headers.get`, `headers.getSetCookie` and `text()`.
 *
 * Both are loaded lazily (see {@link builtin}), so that the module still
 * loads where there is no `node:net`/`node:http` (there, the global `fetch`
 * is used).
 */

import { SessiondError } from "./errors.js";

/** The few shapes of `node:http` used here (the package has no @types/node). */
type NodeHeaders = Record<string, string | string[] | undefined>;
interface IncomingMessage {
  statusCode?: number;
  headers: NodeHeaders;
  setEncoding(encoding: string): void;
  on(event: "data", listener: (chunk: string) => void): this;
  on(event: "end", listener: () => void): this;
  on(event: "error", listener: (e: unknown) => void): this;
}
interface ClientRequest {
  on(event: "error", listener: (e: unknown) => void): this;
  end(body?: string): void;
  destroy(error?: unknown): void;
}
interface HttpModule {
  Agent: new (options: { keepAlive: boolean; maxSockets?: number; scheduling?: string }) => unknown;
  request(
    url: URL,
    options: { method?: string; headers?: Record<string, string>; agent?: unknown },
    callback: (res: IncomingMessage) => void,
  ): ClientRequest;
}

type Transport = { module: HttpModule; agent: unknown };

class NodeAnswerHeaders {
  constructor(private readonly raw: NodeHeaders) {}
  get(name: string): string | null {
    const v = this.raw[name.toLowerCase()];
    if (v === undefined) return null;
    return Array.isArray(v) ? v.join(", ") : v;
  }
  getSetCookie(): string[] {
    const v = this.raw["set-cookie"];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  }
}

const dynamicImport = (name: string): Promise<unknown> => import(name);

/**
 * A Node built-in module: by `process.getBuiltinModule` where Node has it
 * (20.16+, 22.3+), which bundlers leave alone (Next.js's replaces an
 * `import()` of a computed name by one that always throws, which left its
 * server code on the global `fetch`), else by a dynamic import.
 */
async function builtin(name: string): Promise<unknown> {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (typeof p?.getBuiltinModule === "function") {
    const m = p.getBuiltinModule(name);
    if (m !== undefined && m !== null) return m;
  }
  return dynamicImport(name);
}

async function load(protocol: string): Promise<Transport | null> {
  const g = globalThis as { process?: { versions?: { node?: string } } };
  if (typeof g.process?.versions?.node !== "string") return null;
  try {
    const m = (await builtin(protocol === "https:" ? "node:https" : "node:http")) as {
      default?: HttpModule;
    } & HttpModule;
    const module = m.default ?? m;
    return { module, agent: new module.Agent({ keepAlive: true, maxSockets: 256, scheduling: "lifo" }) };
  } catch {
    return null;
  }
}

/**
 * A `fetch` backed by `node:http` with a keep-alive agent of its own, or
 * the global `fetch` where `node:http` cannot be loaded.
 */
export function nodeFetch(): typeof fetch {
  const transports = new Map<string, Promise<Transport | null>>();
  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    let t = transports.get(url.protocol);
    if (t === undefined) {
      t = load(url.protocol);
      transports.set(url.protocol, t);
    }
    const transport = await t;
    if (transport === null) return globalThis.fetch(input, init);
    const signal = init?.signal ?? undefined;
    const headers = (init?.headers ?? {}) as Record<string, string>;
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const req = transport.module.request(
        url,
        { method: init?.method ?? "GET", headers, agent: transport.agent },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk) => {
            body += chunk;
          });
          res.on("error", (e) => reject(e));
          res.on("end", () => {
            signal?.removeEventListener("abort", onAbort);
            const answer = {
              status: res.statusCode ?? 0,
              headers: new NodeAnswerHeaders(res.headers),
              text: async () => body,
            };
            resolve(answer as unknown as Response);
          });
        },
      );
      const onAbort = () => req.destroy(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      req.on("error", (e) => {
        signal?.removeEventListener("abort", onAbort);
        reject(e);
      });
      req.end(typeof init?.body === "string" ? init.body : undefined);
    });
  };
  return f as typeof fetch;
}

// ---- pooled raw sockets ---------------------------------------------------

/** What one `GET` answered: the few parts the client reads. */
export type RawAnswer = {
  status: number;
  /** The body, UTF-8 decoded. */
  body: string;
  /** Every `Set-Cookie` value, in order. */
  setCookie: string[];
  retryAfter: string | null;
};

/** The few shapes of `node:net` and `Buffer` used here. */
interface NodeBuffer extends Uint8Array {
  indexOf(value: string | number, byteOffset?: number): number;
  toString(encoding?: string, start?: number, end?: number): string;
  subarray(start?: number, end?: number): NodeBuffer;
}
interface BufferStatic {
  concat(list: readonly Uint8Array[], totalLength?: number): NodeBuffer;
}
interface NetSocket {
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, initialDelay?: number): this;
  unref(): this;
  readonly destroyed: boolean;
  write(data: string, encoding: string): boolean;
  destroy(error?: unknown): void;
  on(event: "data", listener: (chunk: NodeBuffer) => void): this;
  on(event: "error", listener: (e: unknown) => void): this;
  on(event: "close", listener: () => void): this;
}
interface NetModule {
  connect(options: { host: string; port: number }): NetSocket;
}

/** Past these an answer is not sessiond's: the connection is dropped. */
const MAX_HEAD = 64 * 1024;
const MAX_BODY = 8 * 1024 * 1024;

/** A network failure of the transport (it carries a `code`, as Node's own errors do). */
class TransportError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

function closedEarly(): TransportError {
  return new TransportError("sessiond closed the connection before it answered", "ECONNRESET");
}

function badAnswer(what: string): TransportError {
  return new TransportError(`sessiond's answer is not HTTP/1.1 as expected: ${what}`, "HPE_INVALID_ANSWER");
}

/** One `GET` in flight or waiting for a connection. */
class Pending {
  conn: Conn | null = null;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  constructor(
    readonly pool: NodeHttpPool,
    readonly request: string,
    readonly timeoutMs: number,
    readonly resolve: (a: RawAnswer) => void,
    readonly reject: (e: unknown) => void,
  ) {}
}

/** The body's framing, once the head is read. */
const HEAD = 0;
const LENGTH = 1;
const CHUNKED = 2;
const UNTIL_CLOSE = 3;

function onTimeout(p: Pending): void {
  p.timer = undefined;
  const c = p.conn;
  if (c !== null) {
    // The answer may still come: this connection cannot carry another.
    c.req = null;
    c.socket.destroy();
  } else {
    p.pool.unqueue(p);
  }
  p.reject(new SessiondError("timeout", 0, `sessiond did not answer within ${p.timeoutMs} ms`));
}

/** One kept-alive connection and the parse of the answer it is reading. */
class Conn {
  req: Pending | null = null;
  closed = false;
  private error: unknown = undefined;
  /** Bytes of the answer read and not yet consumed. */
  private buf: NodeBuffer | null = null;
  private framing = HEAD;
  /** Where the body starts in `buf`. */
  private bodyAt = 0;
  private length = 0;
  private status = 0;
  private keepAlive = true;
  private setCookie: string[] = [];
  private retryAfter: string | null = null;

  constructor(
    readonly pool: NodeHttpPool,
    readonly socket: NetSocket,
  ) {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    // Idle connections do not hold the process: a request in flight does,
    // through its timer.
    socket.unref();
    socket.on("data", (chunk) => this.onData(chunk));
    socket.on("error", (e) => {
      this.error = e;
    });
    socket.on("close", () => this.onClose());
  }

  start(p: Pending): void {
    this.req = p;
    p.conn = this;
    this.framing = HEAD;
    this.buf = null;
    this.keepAlive = true;
    this.setCookie = [];
    this.retryAfter = null;
    this.socket.write(p.request, "latin1");
  }

  private onData(chunk: NodeBuffer): void {
    if (this.req === null) {
      // Bytes nobody asked for: the connection is out of step.
      this.socket.destroy();
      return;
    }
    let buf = this.buf === null ? chunk : this.pool.buffer.concat([this.buf, chunk]);
    while (this.framing === HEAD) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.length > MAX_HEAD) return this.fail(badAnswer("the head is too long"));
        this.buf = buf;
        return;
      }
      const problem = this.head(buf.toString("latin1", 0, end));
      if (problem !== null) return this.fail(badAnswer(problem));
      if (this.status < 200) {
        // 1xx: an interim answer; the real one follows.
        buf = buf.subarray(end + 4);
        this.setCookie = [];
        this.retryAfter = null;
        continue;
      }
      this.bodyAt = end + 4;
    }
    if (this.framing === LENGTH) {
      const end = this.bodyAt + this.length;
      if (buf.length < end) {
        this.buf = buf;
        return;
      }
      if (buf.length > end) this.keepAlive = false;
      this.finish(buf.toString("utf8", this.bodyAt, end));
    } else if (this.framing === CHUNKED) {
      const r = dechunk(buf, this.bodyAt, this.pool.buffer);
      if (r === null) {
        if (buf.length - this.bodyAt > MAX_BODY) return this.fail(badAnswer("the body is too long"));
        this.buf = buf;
        return;
      }
      if (typeof r === "string") return this.fail(badAnswer(r));
      if (buf.length > r.end) this.keepAlive = false;
      this.finish(r.body);
    } else {
      if (buf.length - this.bodyAt > MAX_BODY) return this.fail(badAnswer("the body is too long"));
      this.buf = buf;
    }
  }

  /** Reads the status line and the headers; a problem, or null. */
  private head(text: string): string | null {
    if (!text.startsWith("HTTP/1.") || text.charCodeAt(8) !== 32) return "no HTTP/1.x status line";
    const status = Number(text.slice(9, 12));
    if (!(status >= 100 && status <= 999) || !(text.length === 12 || text.charCodeAt(12) === 32)) {
      return "no status code";
    }
    this.status = status;
    let length = -1;
    let chunked = false;
    let close = false;
    let keepAlive = false;
    let at = text.indexOf("\r\n");
    while (at >= 0) {
      const start = at + 2;
      at = text.indexOf("\r\n", start);
      const line = at < 0 ? text.slice(start) : text.slice(start, at);
      const colon = line.indexOf(":");
      if (colon <= 0) return "a header line without a name";
      const name = line.slice(0, colon).toLowerCase();
      if (name === "content-length") {
        const v = line.slice(colon + 1).trim();
        if (!/^\d{1,15}$/.test(v) || (length >= 0 && Number(v) !== length)) return "a bad Content-Length";
        length = Number(v);
      } else if (name === "transfer-encoding") {
        chunked = /(?:^|,)\s*chunked\s*$/i.test(line.slice(colon + 1));
        if (!chunked) return "a transfer coding other than chunked";
      } else if (name === "connection") {
        const v = line.slice(colon + 1).toLowerCase();
        if (/(?:^|[\s,])close(?:$|[\s,])/.test(v)) close = true;
        if (/(?:^|[\s,])keep-alive(?:$|[\s,])/.test(v)) keepAlive = true;
      } else if (name === "set-cookie") {
        this.setCookie.push(line.slice(colon + 1).trim());
      } else if (name === "retry-after") {
        this.retryAfter = line.slice(colon + 1).trim();
      }
    }
    // HTTP/1.1 keeps the connection unless told; HTTP/1.0 only when told.
    this.keepAlive = !close && (text.charCodeAt(7) === 49 || keepAlive);
    if (status < 200) return status === 101 ? "101 Switching Protocols" : null;
    if (length > MAX_BODY) return "the body is too long";
    if (status === 204 || status === 304) {
      this.framing = LENGTH;
      this.length = 0;
    } else if (chunked) {
      // Both framings given: chunked wins and the connection is not reused.
      if (length >= 0) this.keepAlive = false;
      this.framing = CHUNKED;
    } else if (length >= 0) {
      this.framing = LENGTH;
      this.length = length;
    } else {
      this.framing = UNTIL_CLOSE;
      this.keepAlive = false;
    }
    return null;
  }

  private finish(body: string): void {
    const p = this.req;
    if (p === null) return;
    this.req = null;
    this.buf = null;
    clearTimeout(p.timer);
    const answer: RawAnswer = { status: this.status, body, setCookie: this.setCookie, retryAfter: this.retryAfter };
    if (this.keepAlive) this.pool.release(this);
    else this.socket.destroy();
    p.resolve(answer);
  }

  private fail(e: unknown): void {
    const p = this.req;
    this.req = null;
    this.buf = null;
    this.socket.destroy();
    if (p !== null) {
      clearTimeout(p.timer);
      p.reject(e);
    }
  }

  private onClose(): void {
    this.closed = true;
    this.pool.drop(this);
    const p = this.req;
    if (p === null) return;
    if (this.framing === UNTIL_CLOSE && this.error === undefined) {
      const buf = this.buf;
      this.finish(buf === null ? "" : buf.toString("utf8", this.bodyAt));
      return;
    }
    this.req = null;
    clearTimeout(p.timer);
    p.reject(this.error ?? closedEarly());
  }
}

/** A chunked body from `at`: the body and where it ends, null if incomplete, or a problem. */
function dechunk(buf: NodeBuffer, at: number, buffer: BufferStatic): { body: string; end: number } | string | null {
  const parts: NodeBuffer[] = [];
  let total = 0;
  for (;;) {
    const eol = buf.indexOf("\r\n", at);
    if (eol < 0) return buf.length - at > 1024 ? "a chunk size line is too long" : null;
    const line = buf.toString("latin1", at, eol);
    const semi = line.indexOf(";");
    const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
    if (!/^[0-9a-fA-F]{1,7}$/.test(hex)) return "a bad chunk size";
    const size = parseInt(hex, 16);
    at = eol + 2;
    if (size === 0) {
      // Trailers, up to an empty line: skipped.
      for (;;) {
        const e = buf.indexOf("\r\n", at);
        if (e < 0) return null;
        if (e === at) {
          const body = buffer.concat(parts, total).toString("utf8");
          return { body, end: at + 2 };
        }
        at = e + 2;
      }
    }
    if (buf.length < at + size + 2) return null;
    if (buf[at + size] !== 13 || buf[at + size + 1] !== 10) return "a chunk not ended by CRLF";
    parts.push(buf.subarray(at, at + size));
    total += size;
    if (total > MAX_BODY) return "the body is too long";
    at += size + 2;
  }
}

/**
 * `GET`s to one `http:` origin on kept-alive `node:net` sockets: the last
 * freed socket is taken first; at most `maxSockets` are open, and requests
 * past them wait, their time counted in their timeout.
 */
export class NodeHttpPool {
  private readonly idle: Conn[] = [];
  private readonly queue: Pending[] = [];
  private open = 0;

  constructor(
    private readonly net: NetModule,
    readonly buffer: BufferStatic,
    private readonly host: string,
    private readonly port: number,
    private readonly maxSockets = 256,
  ) {}

  /**
   * Sends `request` (a whole HTTP/1.1 request head, no body) and answers its
   * answer. Rejects with a `timeout` {@link SessiondError} past `timeoutMs`
   * (the connection is then closed), or with the network error. `fresh`
   * takes a new connection rather than a kept-alive one.
   */
  get(request: string, timeoutMs: number, fresh = false): Promise<RawAnswer> {
    return new Promise<RawAnswer>((resolve, reject) => {
      const p = new Pending(this, request, timeoutMs, resolve, reject);
      p.timer = setTimeout(onTimeout, timeoutMs, p);
      let c = fresh ? undefined : this.idle.pop();
      // One reset while idle whose close event has not come yet: not used.
      while (c !== undefined && c.socket.destroyed) c = this.idle.pop();
      if (c === undefined) {
        if (!fresh && this.open >= this.maxSockets) {
          this.queue.push(p);
          return;
        }
        c = this.connect();
      }
      c.start(p);
    });
  }

  private connect(): Conn {
    this.open++;
    return new Conn(this, this.net.connect({ host: this.host, port: this.port }));
  }

  /** A connection whose answer was read: the next waiting request, or idle. */
  release(c: Conn): void {
    const next = this.queue.shift();
    if (next !== undefined) c.start(next);
    else this.idle.push(c);
  }

  /** A connection closed: forgotten, and its place given to a waiting request. */
  drop(c: Conn): void {
    this.open--;
    const i = this.idle.lastIndexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (this.queue.length > 0 && this.open < this.maxSockets) {
      const next = this.queue.shift();
      if (next !== undefined) this.connect().start(next);
    }
  }

  unqueue(p: Pending): void {
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
  }
}

/**
 * A pool for the `http:` origin of `url`, or null where `node:net` cannot
 * be loaded (not Node).
 */
export async function nodeHttpPool(url: URL): Promise<NodeHttpPool | null> {
  const g = globalThis as { process?: { versions?: { node?: string } }; Buffer?: BufferStatic };
  if (typeof g.process?.versions?.node !== "string" || g.Buffer === undefined) return null;
  try {
    const m = (await builtin("node:net")) as { default?: NetModule } & NetModule;
    const net = m.default ?? m;
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    return new NodeHttpPool(net, g.Buffer, host, url.port === "" ? 80 : Number(url.port));
  } catch {
    return null;
  }
}
