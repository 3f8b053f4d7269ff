/**
 * Better Auth backed by sessiond.
 *
 * Two parts:
 *
 * - {@link sessiondSessions}: `getSession(headers)` answers what Better
 *   Auth's `auth.api.getSession({ headers })` answers (`{ session, user }`
 *   or `null`), resolved by sessiond from the app's own session cookie (or
 *   bearer token) instead of by a query to the app's database. For server
 *   components, route handlers, `proxy.ts` and any Node server.
 * - {@link sessiond}: a Better Auth plugin whose after-hooks make every
 *   call that ends or changes sessions (sign-out, the revocations, a
 *   password change, the admin plugin's role, ban, removal and
 *   impersonation) return only once every sessiond node dropped what it
 *   held for the users concerned, and fail (an `APIError`, 503) when
 *   sessiond cannot confirm it, instead of hiding it.
 *
 * ```ts
 * import { betterAuth } from "better-auth";
 * import { admin } from "better-auth/plugins";
 * import { sessiond, sessiondSessions } from "@sessiond/client/better-auth";
 *
 * export const auth = betterAuth({
 *   // ...
 *   plugins: [admin(), sessiond({ url: process.env.SESSIOND_URL!, appKey: process.env.SESSIOND_APP_KEY! })],
 * });
 * export const { getSession } = sessiondSessions({ url: process.env.SESSIOND_URL! });
 * // in a route handler: const s = await getSession(request.headers); if (!s) return 401;
 * ```
 *
 * Outage rules (as the Auth.js helper's): sessiond down, slow or its
 * database down → `getSession` answers `null` within `timeoutMs` (the
 * request is denied) and nothing clears the cookie, so the user is still
 * signed in once sessiond answers again.
 */

import { APIError, createAuthMiddleware, getSessionFromCtx, isAPIError } from "better-auth/api";
import type { BetterAuthPlugin } from "better-auth";

import { SessiondClient, SessiondError, type ErrorCode } from "./index.js";
import { describe, interpret } from "./errors.js";
import { nodeFetch, nodeHttpPool, type NodeHttpPool, type RawAnswer } from "./node-transport.js";

/** Better Auth's session, as `auth.api.getSession` answers it. */
export type BetterAuthSession = {
  id: string;
  token: string;
  userId: string;
  expiresAt: Date;
  createdAt: Date;
  updatedAt: Date;
  ipAddress?: string | null;
  userAgent?: string | null;
  impersonatedBy?: string | null;
  [field: string]: unknown;
};

/** Better Auth's user, as `auth.api.getSession` answers it (admin plugin fields included). */
export type BetterAuthUser = {
  id: string;
  email: string;
  name: string;
  emailVerified: boolean;
  image?: string | null;
  createdAt: Date;
  updatedAt: Date;
  role?: string | null;
  banned?: boolean | null;
  banReason?: string | null;
  banExpires?: Date | null;
  [field: string]: unknown;
};

/** What `getSession` answers: Better Auth's shape. */
export type BetterAuthSessionData = { session: BetterAuthSession; user: BetterAuthUser };

/** `getSession`'s answer with what a caller may need besides it. */
export type SessionResolution = {
  /** The session, or `null`: no credential, signed out, or sessiond could not answer. */
  data: BetterAuthSessionData | null;
  /**
   * The `Set-Cookie` values sessiond answered (the session cookie re-set
   * when sessiond slid the session's expiry, as Better Auth does): forward
   * them on the app's response. Never a cookie that clears the session.
   */
  setCookie: string[];
  /**
   * Why there is no session, when sessiond said or failed: `invalid_token`
   * (forged, tampered, unknown), `session_revoked` (signed out, expired,
   * user gone or banned), or a code of unavailability (`timeout`,
   * `network_error`, `unavailable`, ...). Absent without a credential.
   */
  error?: ErrorCode;
  /** True when sessiond could not answer: deny the request, keep the user signed in. */
  unavailable?: boolean;
};

export type SessiondSessionsOptions = {
  /** sessiond's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string | URL;
  /**
   * Time allowed for one session lookup, in ms. Default 1000: past it the
   * request is answered `null` (denied) and the cookie is kept.
   */
  timeoutMs?: number;
  /** Better Auth's `advanced.cookiePrefix`. Default `"better-auth"`. */
  cookiePrefix?: string;
  /**
   * The session-token cookie's full name, when the app renamed it
   * (`advanced.cookies.session_token.name`). Default
   * `<cookiePrefix>.session_token` and its `__Secure-` twin.
   */
  cookieName?: string;
  /**
   * Called when sessiond could not answer (down, slow, its database down).
   * The error carries no token. Default: `console.warn` of its code and message.
   */
  onUnavailable?: (error: SessiondError) => void;
  /**
   * The `fetch` to use. Default under Node: kept-alive `node:net` sockets
   * of the module's own for an `http:` URL, `node:https` with a keep-alive
   * agent for an `https:` one; the global `fetch` elsewhere.
   */
  fetch?: typeof fetch;
};

/** Options of one `getSession` call. */
export type GetSessionOptions = {
  /**
   * The app's response headers: the `Set-Cookie` of a slid expiry is
   * appended to them (a `NextResponse`'s or a `Response`'s `headers`).
   */
  responseHeaders?: Headers;
};

type HeadersLike = Headers | Record<string, string | string[] | undefined> | [string, string][];

/** Date fields of Better Auth's tables (`…At`, `…Expires`): answered as ISO strings, handed on as `Date`s. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

/** Turns `record`'s date fields into `Date`s, in place (it was just parsed). */
function revive(record: Record<string, unknown>): Record<string, unknown> {
  for (const k in record) {
    const v = record[k];
    if (typeof v === "string" && (k.endsWith("At") || k.endsWith("Expires")) && ISO_DATE.test(v)) {
      record[k] = new Date(v);
    }
  }
  return record;
}

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  if (Array.isArray(headers)) {
    const found = headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
    return found.length > 0 ? found.join(name === "cookie" ? "; " : ", ") : undefined;
  }
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== name || v === undefined) continue;
    return Array.isArray(v) ? v.join(name === "cookie" ? "; " : ", ") : v;
  }
  return undefined;
}

/** Visible ASCII but `;` and `,`: what a cookie value or a bearer token may hold. */
const CREDENTIAL = /^[\x21-\x2b\x2d-\x3a\x3c-\x7e]{1,4096}$/;

/**
 * The credential to forward: the session-token cookie (with Better Auth's
 * "don't remember me" cookie, which decides whether the session slides),
 * else the bearer token; every other cookie and header of the request
 * stays here.
 */
function credentialOf(
  headers: HeadersLike,
  names: readonly string[],
  companions: readonly string[],
): { cookie?: string; authorization?: string } | null {
  const cookie = header(headers, "cookie");
  if (cookie !== undefined && cookie.length <= 65_536) {
    const kept: string[] = [];
    let token = false;
    for (const part of cookie.split(";")) {
      const eq = part.indexOf("=");
      if (eq < 0) continue;
      const name = part.slice(0, eq).trim();
      const isToken = names.includes(name);
      if (!isToken && !companions.includes(name)) continue;
      const value = part.slice(eq + 1).trim();
      if (!CREDENTIAL.test(value)) continue;
      if (isToken) token = true;
      kept.push(`${name}=${value}`);
    }
    if (token) return { cookie: kept.join("; ") };
  }
  const authorization = header(headers, "authorization");
  if (authorization !== undefined) {
    const m = /^Bearer +(\S+)$/i.exec(authorization.trim());
    if (m?.[1] !== undefined && CREDENTIAL.test(m[1])) return { authorization: `Bearer ${m[1]}` };
  }
  return null;
}

function toSessiondError(e: unknown): SessiondError {
  return e instanceof SessiondError
    ? e
    : new SessiondError("unexpected_response", 0, e instanceof Error ? e.message : "unknown error", { cause: e });
}

/**
 * `getSession(headers)` answered by sessiond: Better Auth's `{ session,
 * user }` for the request's session cookie or bearer token, or `null`.
 */
export function sessiondSessions(options: SessiondSessionsOptions) {
  const timeoutMs = options.timeoutMs ?? 1000;
  if (!(timeoutMs > 0)) throw new TypeError("sessiondSessions: timeoutMs is a positive number of ms");
  const prefix = options.cookiePrefix ?? "better-auth";
  const names =
    options.cookieName !== undefined
      ? [options.cookieName, `__Secure-${options.cookieName}`]
      : [`${prefix}.session_token`, `__Secure-${prefix}.session_token`];
  // "Don't remember me" (a session that is not slid): sessiond reads it too.
  const companions = [`${prefix}.dont_remember`, `__Secure-${prefix}.dont_remember`];
  // One retry, at once, for a connection that broke before it answered (a
  // kept-alive one closed by sessiond): a timeout is never retried, so an
  // answer or `null` comes within `timeoutMs`.
  const clientOptions: ConstructorParameters<typeof SessiondClient>[0] = {
    baseUrl: options.url,
    timeoutMs,
    retries: 1,
    retryDelayMs: 0,
    // Node's own HTTP client with a keep-alive agent for https (Node's
    // global fetch costs more CPU per call).
    fetch: options.fetch ?? nodeFetch(),
  };
  const client = new SessiondClient(clientOptions);
  const onUnavailable =
    options.onUnavailable ??
    ((e: SessiondError) => console.warn(`sessiond: Better Auth session not resolved (${e.code}): ${e.message}`));

  // Under Node, for an http: URL and no `fetch` of the caller's: one call per
  // request that reads the session, on the module's own pooled sockets, its
  // request head written once here.
  const url = new URL(client.baseUrl);
  let pool: NodeHttpPool | null | undefined =
    options.fetch === undefined && url.protocol === "http:" && url.username === "" && url.password === ""
      ? undefined
      : null;
  const loading = pool === undefined ? nodeHttpPool(url) : null;
  const requestHead =
    `GET ${url.pathname.replace(/\/+$/, "")}/api/better-auth/get-session HTTP/1.1\r\n` +
    `Host: ${url.host}\r\nAccept: application/json\r\n`;

  /** The answer of one lookup on `p`, retried once at once on a new connection after a network error. */
  async function ask(p: NodeHttpPool, request: string): Promise<RawAnswer> {
    try {
      return await p.get(request, timeoutMs);
    } catch (e) {
      if (e instanceof SessiondError) throw e;
    }
    try {
      return await p.get(request, timeoutMs, true);
    } catch (e) {
      if (e instanceof SessiondError) throw e;
      throw new SessiondError("network_error", 0, `sessiond could not be reached (${describe(e)})`, { cause: e });
    }
  }

  /** sessiond's `{ session, user }` for `credential` and its `Set-Cookie` values. */
  async function lookup(credential: {
    cookie?: string;
    authorization?: string;
  }): Promise<{ data: { session: Record<string, unknown>; user: Record<string, unknown> }; setCookie: string[] }> {
    let p = pool;
    if (p === undefined) p = pool = await loading;
    if (p === null || p === undefined) return client.betterAuthSession(credential, { timeoutMs });
    const line =
      credential.cookie !== undefined
        ? `Cookie: ${credential.cookie}\r\n\r\n`
        : `Authorization: ${credential.authorization}\r\n\r\n`;
    const a = await ask(p, requestHead + line);
    const data = interpret(a.status, a.body, false, a.retryAfter) as { session?: unknown; user?: unknown };
    if (typeof data.session !== "object" || data.session === null || typeof data.user !== "object" || data.user === null) {
      throw new SessiondError("unexpected_response", 200, "sessiond answered no Better Auth session and user");
    }
    return {
      data: data as { session: Record<string, unknown>; user: Record<string, unknown> },
      setCookie: a.setCookie,
    };
  }

  /** The session and the `Set-Cookie` to forward, with why there is none. */
  async function resolveSession(headers: HeadersLike): Promise<SessionResolution> {
    const credential = credentialOf(headers, names, companions);
    if (credential === null) return { data: null, setCookie: [] };
    try {
      const r = await lookup(credential);
      return {
        data: { session: revive(r.data.session), user: revive(r.data.user) } as BetterAuthSessionData,
        setCookie: r.setCookie,
      };
    } catch (e) {
      const err = toSessiondError(e);
      if (err.signedOut) return { data: null, setCookie: [], error: err.code };
      onUnavailable(err);
      return { data: null, setCookie: [], error: err.code, unavailable: true };
    }
  }

  /**
   * Better Auth's `auth.api.getSession({ headers })`, answered by sessiond:
   * `{ session, user }`, or `null` (no credential, signed out, or sessiond
   * could not answer within `timeoutMs`: deny the request). Pass
   * `{ responseHeaders }` to receive a slid expiry's `Set-Cookie`.
   */
  async function getSession(headers: HeadersLike, opts?: GetSessionOptions): Promise<BetterAuthSessionData | null> {
    const r = await resolveSession(headers);
    if (opts?.responseHeaders !== undefined) {
      for (const c of r.setCookie) opts.responseHeaders.append("set-cookie", c);
    }
    return r.data;
  }

  return { getSession, resolveSession };
}

// ---- the plugin -----------------------------------------------------------

export type SessiondPluginOptions = {
  /** sessiond's base URL (any node of the cluster). */
  url: string | URL;
  /**
   * An app key with the `admin` scope (`sessiond appkey create --scope
   * admin`): it confirms each change with `POST
   * /api/admin/users/{id}/invalidate`. Server side only.
   */
  appKey: string;
  /** Time allowed for one confirmation attempt, in ms. Default 5000. */
  timeoutMs?: number;
  /**
   * Let Better Auth's `session.cookieCache` stay on. Off by default: a
   * cookie cache answers `auth.api.getSession` from the cookie for up to
   * its `maxAge` after a sign-out, a revocation or a ban (see the README).
   */
  allowCookieCache?: boolean;
  /** The `fetch` to use. Default: the global one. */
  fetch?: typeof fetch;
};

/** The error code of a change sessiond did not confirm. */
export const SESSIOND_UNCONFIRMED = "SESSIOND_UNCONFIRMED";

type HookContext = {
  path?: string;
  body?: unknown;
  context: {
    returned?: unknown;
    session?: { session?: { userId?: unknown; impersonatedBy?: unknown }; user?: { id?: unknown } } | null;
  };
};

/** The calls that change or end sessions, and whose users they touch. */
const CONFIRMED: Record<string, { self?: boolean; target?: boolean; impersonator?: boolean }> = {
  "/sign-out": { self: true },
  "/revoke-session": { self: true },
  "/revoke-sessions": { self: true },
  "/revoke-other-sessions": { self: true },
  "/change-password": { self: true },
  "/update-user": { self: true },
  "/delete-user": { self: true },
  "/admin/set-role": { target: true },
  "/admin/ban-user": { target: true },
  "/admin/unban-user": { target: true },
  "/admin/remove-user": { target: true },
  "/admin/update-user": { target: true },
  "/admin/revoke-user-sessions": { target: true },
  "/admin/set-user-password": { target: true },
  "/admin/impersonate-user": { self: true, target: true },
  "/admin/stop-impersonating": { self: true, impersonator: true },
};

/** Calls whose caller is not known after they ran unless read before. */
const READ_BEFORE = new Set(["/sign-out", "/admin/stop-impersonating", "/delete-user"]);

function idOf(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined;
}

function failed(returned: unknown): boolean {
  if (returned === undefined) return false;
  if (isAPIError(returned)) return true;
  return returned instanceof Response && returned.status >= 400;
}

/**
 * The Better Auth plugin. Add it with the admin plugin (and the bearer
 * plugin if the app uses bearer tokens) to `plugins`.
 */
export function sessiond(options: SessiondPluginOptions) {
  if (typeof options?.appKey !== "string" || options.appKey === "") {
    throw new TypeError("sessiond plugin: appKey (an app key with the admin scope) is required");
  }
  const clientOptions: ConstructorParameters<typeof SessiondClient>[0] = {
    baseUrl: options.url,
    timeoutMs: options.timeoutMs ?? 5000,
  };
  if (options.fetch !== undefined) clientOptions.fetch = options.fetch;
  const client = new SessiondClient(clientOptions);
  const appKey = options.appKey;

  async function confirm(ids: Set<string>): Promise<void> {
    const results = await Promise.allSettled([...ids].map((id) => client.invalidate(appKey, id)));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure !== undefined) {
      const err = toSessiondError(failure.reason);
      throw new APIError("SERVICE_UNAVAILABLE", {
        message: `the change is written but sessiond could not confirm that every node dropped the old state (${err.code}): retry the call`,
        code: SESSIOND_UNCONFIRMED,
      });
    }
  }

  return {
    id: "sessiond",
    init(ctx: { options: { session?: { cookieCache?: { enabled?: boolean } } } }) {
      if (ctx.options.session?.cookieCache?.enabled === true && options.allowCookieCache !== true) {
        throw new Error(
          "sessiond plugin: session.cookieCache is on: Better Auth would answer getSession from the cookie for up to its maxAge after a sign-out, a revocation or a ban. Turn it off (sessiond answers getSession from memory) or pass allowCookieCache: true",
        );
      }
    },
    hooks: {
      before: [
        {
          matcher: (ctx: { path?: string }) => ctx.path !== undefined && READ_BEFORE.has(ctx.path),
          // The caller of a sign-out or of stop-impersonating is known only
          // from the session the call deletes: read it first (it stays on
          // the call's context for the after-hook).
          handler: createAuthMiddleware(async (ctx) => {
            try {
              await getSessionFromCtx(ctx);
            } catch {
              // No session: the call itself answers as it would.
            }
          }),
        },
      ],
      after: [
        {
          matcher: (ctx: { path?: string }) => ctx.path !== undefined && ctx.path in CONFIRMED,
          handler: createAuthMiddleware(async (raw) => {
            const ctx = raw as unknown as HookContext;
            const rule = CONFIRMED[ctx.path ?? ""];
            if (rule === undefined || failed(ctx.context.returned)) return;
            const ids = new Set<string>();
            const session = ctx.context.session;
            if (rule.self) {
              const id = idOf(session?.user?.id) ?? idOf(session?.session?.userId);
              if (id !== undefined) ids.add(id);
            }
            if (rule.impersonator) {
              const id = idOf(session?.session?.impersonatedBy);
              if (id !== undefined) ids.add(id);
            }
            if (rule.target) {
              const body = ctx.body as { userId?: unknown } | undefined;
              const id = idOf(body?.userId);
              if (id !== undefined) ids.add(id);
            }
            if (ids.size > 0) await confirm(ids);
          }),
        },
      ],
    },
  } satisfies BetterAuthPlugin;
}
