/**
 * A `fetch` for the client's calls to sessiond made with Node's own
 * `node:http`/`node:https` and a keep-alive agent: on the session path of
 * every request, Node's global `fetch` (undici) cost the app more per call
 * than `node:http` in a quick comparison against a stub server. Only what the
 * client reads of a `Response` is provided: `status`, `headers.get`,
 * `headers.getSetCookie` and `text()`.
 *
 * Loaded lazily, by a dynamic import, so that the module still loads where
 * there is no `node:http` (there, the global `fetch` is used).
 */

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

async function load(protocol: string): Promise<Transport | null> {
  const g = globalThis as { process?: { versions?: { node?: string } } };
  if (typeof g.process?.versions?.node !== "string") return null;
  try {
    const m = (await dynamicImport(protocol === "https:" ? "node:https" : "node:http")) as {
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
