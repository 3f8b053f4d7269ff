/**
 * A client for sessiond's HTTP API (`GET /openapi.json`). No runtime dependencies:
 * it needs only the platform's `fetch`, `AbortController` and timers, so
 * it runs on Node 18+, in Next.js middleware (the edge runtime) and in
 * browsers alike.
 *
 * Every call has a timeout (per attempt) and calls that are safe to repeat
 * are retried a bounded number of times on network errors. An HTTP answer is
 * never retried: an API error is thrown at once as a {@link SessiondError}.
 */

import {
  API_ERROR_CODES,
  SessiondError,
  describe,
  errorCodes,
  interpret,
  isSessiondError,
  type ApiErrorCode,
  type ClientErrorCode,
  type ErrorCode,
} from "./errors.js";

export { API_ERROR_CODES, SessiondError, isSessiondError };
export type { ApiErrorCode, ClientErrorCode, ErrorCode };

/**
 * A user id as the application spells it: a number for an integer id (as
 * sessiond's own users table has), a string for any other (a UUID, a cuid,
 * a nanoid, Better Auth's ids). sessiond answers an integer id as a JSON
 * number and any other as a string; either form is accepted wherever an id
 * is sent, and `"42"` names the same user as `42`.
 */
export type UserId = number | string;

/** A user as sessiond answers it. */
export interface User {
  id: UserId;
  email: string;
  role: string;
  status: "active" | "deactivated";
}

/** How the session was answered: from the cache or from the database. */
export interface CacheInfo {
  hit: boolean;
  age_ms: number;
  ttl_ms: number;
  version: number;
  node: string;
}

/** The answer of `GET /api/auth/session` and `POST /api/auth/refresh-session`. */
export interface Session {
  user: User;
  /** The token's expiry, RFC 3339. */
  expires: string;
  cache: CacheInfo;
}

/** The answer of `POST /api/auth/login`. */
export interface LoginResult {
  token: string;
  token_type: "Bearer";
  /** The token's expiry, RFC 3339. */
  expires_at: string;
  user: User;
  /**
   * On a password login: a device token for this account (30 days). Keep
   * it with the end user's device (a cookie of its own) and pass it as
   * `device` to the account's next logins: while strangers' failed guesses
   * hold the account off, those logins are let through.
   */
  device?: string;
}

/** The body of `POST /api/admin/users`. */
export interface NewUser {
  email: string;
  password: string;
  /** Defaults to `user` on the server. */
  role?: string;
}

export interface ClientOptions {
  /** sessiond's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string | URL;
  /** Time allowed for one attempt (connect, answer, body), in ms. Default 5000. */
  timeoutMs?: number;
  /** Extra attempts after a network error (see the README's retry policy). Default 2. */
  retries?: number;
  /** Wait before the first retry, in ms, doubled before each next one. Default 100. */
  retryDelayMs?: number;
  /** The `fetch` to use. Default: the global one. */
  fetch?: typeof fetch;
  /**
   * An app key (`sdk_…`, from `sessiond appkey create --scope mint`) for
   * {@link SessiondClient.mintSession}. Server side only: a key must never
   * reach a browser.
   */
  appKey?: string;
}

/** Options of one call. */
export interface CallOptions {
  /** Cancels the call (and its retries). */
  signal?: AbortSignal;
  /** Overrides the client's per-attempt timeout for this call. */
  timeoutMs?: number;
}

export interface LoginOptions extends CallOptions {
  /**
   * The end user's address, or the `X-Forwarded-For` chain your app
   * received: sent as `X-Forwarded-For` so that sessiond counts failed
   * logins per end user rather than per app server. sessiond reads it only
   * from peers listed in its `--trusted-proxies`. Entries that are not IP
   * addresses are dropped with everything to their left (see the README).
   */
  clientAddress?: string | null;
  /**
   * The device token an earlier login of this account answered with
   * (`LoginResult.device`), relayed from the end user's device. One that
   * does not check is ignored (the login counts as a stranger's).
   */
  device?: string | null;
}

export interface RefreshOptions extends CallOptions {
  /** Re-read the database even when the cached record is fresh. */
  force?: boolean;
}

/**
 * When a call may be sent again after a network error:
 * - `idempotent`: after any network error (the call may have reached
 *   sessiond; doing it twice has the effect of doing it once);
 * - `unsent`: only when the connection was refused, i.e. the request
 *   certainly never reached sessiond (a second attempt after a lost answer
 *   would answer 409/404/401 for a call that in fact succeeded).
 */
type RetryPolicy = "idempotent" | "unsent";

interface Call {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  token?: string;
  /** The `X-Forwarded-For` value, already checked by {@link forwardedFor}. */
  forwardedFor?: string;
  body?: unknown;
  retry: RetryPolicy;
  /** The answer has no body (204, 202). */
  empty?: boolean;
  /** More request headers (the Better Auth credential, already checked). */
  headers?: Record<string, string>;
  /** Receives the answer's `Set-Cookie` values (success answers only). */
  setCookie?: (values: string[]) => void;
}

/** Network error codes that prove the request never left this process. */
const UNSENT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** A network failure of one attempt, before it becomes a SessiondError. */
class NetworkFailure {
  constructor(
    readonly cause: unknown,
    readonly unsent: boolean,
  ) {}
}


/** A JWT is visible ASCII; anything else cannot be a token sessiond issued. */
const TOKEN_SHAPE = /^[\x21-\x7e]{1,8192}$/;

function checkToken(token: unknown): string {
  if (typeof token !== "string" || !TOKEN_SHAPE.test(token)) {
    throw new SessiondError("invalid_token", 401, "the token is not a bearer token sessiond issued");
  }
  return token;
}

const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const IPV6 = /^[0-9a-f]*:[0-9a-f:.]*$/i;

/** One hop of an `X-Forwarded-For` chain as a bare address, or null. */
function hop(entry: string): string | null {
  let a = entry.trim();
  // Some proxies write `[v6]:port` or `v4:port`; sessiond wants the address.
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(a);
  if (bracketed) a = bracketed[1] ?? "";
  else if (/^[\d.]+:\d{1,5}$/.test(a)) a = a.slice(0, a.indexOf(":"));
  if (a.length < 2 || a.length > 45) return null;
  return IPV4.test(a) || IPV6.test(a) ? a : null;
}

/**
 * The `X-Forwarded-For` value to send for `clientAddress`: its hops as bare
 * addresses. A hop that is not an address was not written by a proxy (they
 * write addresses), so it and everything left of it came from the client:
 * only the hops right of the right-most bad one are kept. Undefined when
 * none is left.
 */
export function forwardedFor(clientAddress: string | null | undefined): string | undefined {
  if (typeof clientAddress !== "string" || clientAddress.length > 4096) return undefined;
  const kept: string[] = [];
  const entries = clientAddress.split(",");
  for (let i = entries.length - 1; i >= 0; i--) {
    const a = hop(entries[i] ?? "");
    if (a === null) break;
    kept.unshift(a);
  }
  return kept.length > 0 ? kept.join(", ") : undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

function userPath(id: UserId, action?: string): string {
  const base = `/api/admin/users/${encodeURIComponent(String(id))}`;
  return action === undefined ? base : `${base}/${action}`;
}

export class SessiondClient {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly appKey: string | undefined;

  constructor(options: ClientOptions) {
    const base = String(options.baseUrl);
    if (!/^https?:\/\//i.test(base)) {
      throw new TypeError("SessiondClient: baseUrl must be an http(s) URL");
    }
    this.baseUrl = base.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retries = Math.max(0, Math.floor(options.retries ?? 2));
    this.retryDelayMs = Math.max(0, options.retryDelayMs ?? 100);
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") {
      throw new TypeError("SessiondClient: no fetch (Node 18+ has one; else pass options.fetch)");
    }
    this.fetchImpl = f;
    this.appKey = options.appKey;
  }

  // ---- sessions -------------------------------------------------------

  /**
   * `POST /api/auth/login`. Retried after network errors: at worst a token
   * nobody holds is issued. Past the failed-login limits it throws
   * `rate_limited` with `retryAfter` in seconds.
   */
  async login(email: string, password: string, options?: LoginOptions): Promise<LoginResult> {
    const body: Record<string, string> = { email, password };
    if (options?.device) body.device = options.device;
    const call: Call = { method: "POST", path: "/api/auth/login", body, retry: "idempotent" };
    const xff = forwardedFor(options?.clientAddress);
    if (xff !== undefined) call.forwardedFor = xff;
    return this.call<LoginResult>(call, options);
  }

  /**
   * `POST /api/sessions` with the client's `appKey` (scope `mint`):
   * sessiond's token for a user your app signed in itself (OAuth, magic
   * link, passkey), in the shape of a login's answer. Refused for an unknown
   * user (`not_found`) or a deactivated one (`forbidden`); a revoked or
   * wrong key is `invalid_token`. Retried after network errors, as a login:
   * at worst a token nobody holds is issued.
   */
  async mintSession(userId: number | string, options?: CallOptions): Promise<LoginResult> {
    if (this.appKey === undefined) {
      throw new TypeError("SessiondClient: mintSession needs an app key: new SessiondClient({ baseUrl, appKey })");
    }
    // Ids as Auth.js adapters hand them (strings): integers are sent as numbers.
    const id = typeof userId === "string" && /^[1-9][0-9]{0,14}$/.test(userId) ? Number(userId) : userId;
    return this.call<LoginResult>(
      { method: "POST", path: "/api/sessions", token: checkToken(this.appKey), body: { user_id: id }, retry: "idempotent" },
      options,
    );
  }

  /** `GET /api/auth/session`: the token's user as of now. */
  async getSession(token: string, options?: CallOptions): Promise<Session> {
    return this.call<Session>(
      { method: "GET", path: "/api/auth/session", token: checkToken(token), retry: "idempotent" },
      options,
    );
  }

  /** `POST /api/auth/refresh-session`; with `force` the database is read. */
  async refreshSession(token: string, options?: RefreshOptions): Promise<Session> {
    return this.call<Session>(
      {
        method: "POST",
        path: "/api/auth/refresh-session",
        token: checkToken(token),
        body: { force: options?.force ?? false },
        retry: "idempotent",
      },
      options,
    );
  }

  /** `POST /api/auth/logout`: this token stops resolving at once. */
  async logout(token: string, options?: CallOptions): Promise<void> {
    await this.call<void>(
      { method: "POST", path: "/api/auth/logout", token: checkToken(token), retry: "unsent", empty: true },
      options,
    );
  }

  /**
   * `POST /api/auth/password`: the token's user changes their own password
   * (the current one is checked, and counted as a login is). Every other
   * token of the user stops resolving; the result holds a new token for
   * the caller.
   */
  async changePassword(
    token: string,
    currentPassword: string,
    newPassword: string,
    options?: CallOptions,
  ): Promise<LoginResult> {
    return this.call<LoginResult>(
      {
        method: "POST",
        path: "/api/auth/password",
        token: checkToken(token),
        body: { current_password: currentPassword, new_password: newPassword },
        retry: "unsent",
      },
      options,
    );
  }

  // ---- administration (the token's user must have the role `admin`) ----

  /** `POST /api/admin/users` → the new user (201). */
  async createUser(adminToken: string, user: NewUser, options?: CallOptions): Promise<User> {
    return this.call<User>(
      { method: "POST", path: "/api/admin/users", token: checkToken(adminToken), body: user, retry: "unsent" },
      options,
    );
  }

  /** `GET /api/admin/users/{id}`. */
  async getUser(adminToken: string, id: UserId, options?: CallOptions): Promise<User> {
    return this.call<User>(
      { method: "GET", path: userPath(id), token: checkToken(adminToken), retry: "idempotent" },
      options,
    );
  }

  /** `PUT /api/admin/users/{id}/role`: every session shows it at once. */
  async setRole(adminToken: string, id: UserId, role: string, options?: CallOptions): Promise<User> {
    return this.call<User>(
      { method: "PUT", path: userPath(id, "role"), token: checkToken(adminToken), body: { role }, retry: "idempotent" },
      options,
    );
  }

  /** `POST /api/admin/users/{id}/deactivate`: its tokens stop resolving at once. */
  async deactivate(adminToken: string, id: UserId, options?: CallOptions): Promise<User> {
    return this.call<User>(
      { method: "POST", path: userPath(id, "deactivate"), token: checkToken(adminToken), retry: "idempotent" },
      options,
    );
  }

  /** `POST /api/admin/users/{id}/activate` (tokens revoked by the deactivation stay revoked). */
  async activate(adminToken: string, id: UserId, options?: CallOptions): Promise<User> {
    return this.call<User>(
      { method: "POST", path: userPath(id, "activate"), token: checkToken(adminToken), retry: "idempotent" },
      options,
    );
  }

  /** `DELETE /api/admin/users/{id}`: its tokens stop resolving at once. */
  async deleteUser(adminToken: string, id: UserId, options?: CallOptions): Promise<void> {
    await this.call<void>(
      { method: "DELETE", path: userPath(id), token: checkToken(adminToken), retry: "unsent", empty: true },
      options,
    );
  }

  /** `POST /api/admin/users/{id}/invalidate`: the cached record is dropped (202). */
  async invalidate(adminToken: string, id: UserId, options?: CallOptions): Promise<void> {
    await this.call<void>(
      { method: "POST", path: userPath(id, "invalidate"), token: checkToken(adminToken), retry: "idempotent", empty: true },
      options,
    );
  }

  /** `PUT /api/admin/users/{id}/password`: a new password; the user's tokens stop resolving. */
  async resetPassword(adminToken: string, id: number, password: string, options?: CallOptions): Promise<User> {
    return this.call<User>(
      {
        method: "PUT",
        path: userPath(id, "password"),
        token: checkToken(adminToken),
        body: { password },
        retry: "unsent",
      },
      options,
    );
  }

  /** `POST /api/admin/users/{id}/revoke-sessions`: tokens issued until now stop resolving. */
  async revokeSessions(adminToken: string, id: UserId, options?: CallOptions): Promise<void> {
    await this.call<void>(
      {
        method: "POST",
        path: userPath(id, "revoke-sessions"),
        token: checkToken(adminToken),
        retry: "idempotent",
        empty: true,
      },
      options,
    );
  }

  /**
   * `GET /api/better-auth/get-session`: Better Auth's session, resolved by
   * sessiond from the app's own session cookie (`cookie`, holding only the
   * session-token cookie) or bearer token (`authorization`). Answers
   * Better Auth's `{ session, user }` as sent (dates as ISO strings) and
   * the `Set-Cookie` values sessiond sent (a slid expiry). Throws
   * `invalid_token` / `session_revoked` when it does not resolve. Most
   * apps use `@sessiond/client/better-auth` instead.
   */
  async betterAuthSession(
    credential: { cookie?: string; authorization?: string },
    options?: CallOptions,
  ): Promise<{ data: { session: Record<string, unknown>; user: Record<string, unknown> }; setCookie: string[] }> {
    const headers: Record<string, string> = {};
    if (credential.cookie !== undefined) headers["cookie"] = credential.cookie;
    if (credential.authorization !== undefined) headers["authorization"] = credential.authorization;
    let setCookie: string[] = [];
    const data = await this.call<{ session: Record<string, unknown>; user: Record<string, unknown> }>(
      {
        method: "GET",
        path: "/api/better-auth/get-session",
        headers,
        retry: "idempotent",
        setCookie: (values) => {
          setCookie = values;
        },
      },
      options,
    );
    if (
      data === null ||
      typeof data.session !== "object" ||
      data.session === null ||
      typeof data.user !== "object" ||
      data.user === null
    ) {
      throw new SessiondError("unexpected_response", 200, "sessiond answered no Better Auth session and user");
    }
    return { data, setCookie };
  }

  // ---- transport ------------------------------------------------------

  private async call<T>(call: Call, options?: CallOptions): Promise<T> {
    const signal = options?.signal;
    const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) {
        throw new SessiondError("aborted", 0, "the call was cancelled", { cause: signal.reason });
      }
      try {
        return (await this.attempt(call, timeoutMs, signal)) as T;
      } catch (e) {
        if (!(e instanceof NetworkFailure)) throw e;
        const retryable = call.retry === "idempotent" || e.unsent;
        if (!retryable || attempt >= this.retries || signal?.aborted) {
          throw new SessiondError(
            "network_error",
            0,
            `sessiond could not be reached (${describe(e.cause)})`,
            { cause: e.cause },
          );
        }
        await sleep(this.retryDelayMs * 2 ** attempt, signal);
      }
    }
  }

  /** One request: an answer, a SessiondError, or a NetworkFailure to retry. */
  private async attempt(call: Call, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });

    const headers: Record<string, string> = { accept: "application/json" };
    if (call.token !== undefined) headers["authorization"] = `Bearer ${call.token}`;
    if (call.forwardedFor !== undefined) headers["x-forwarded-for"] = call.forwardedFor;
    if (call.headers !== undefined) Object.assign(headers, call.headers);
    let body: string | undefined;
    if (call.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    const failed = (e: unknown): unknown => {
      if (timedOut) {
        return new SessiondError("timeout", 0, `sessiond did not answer within ${timeoutMs} ms`, { cause: e });
      }
      if (signal?.aborted) {
        return new SessiondError("aborted", 0, "the call was cancelled", { cause: signal.reason });
      }
      return new NetworkFailure(e, errorCodes(e).some((c) => UNSENT_CODES.has(c)));
    };

    try {
      let res: Response;
      try {
        res = await this.fetchImpl(this.baseUrl + call.path, {
          method: call.method,
          headers,
          body,
          signal: controller.signal,
        });
      } catch (e) {
        throw failed(e);
      }
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        // The request was delivered; only an idempotent call may be retried.
        const f = failed(e);
        throw f instanceof NetworkFailure ? new NetworkFailure(f.cause, false) : f;
      }
      const value = interpret(res.status, text, call.empty === true, res.headers.get("retry-after"));
      if (call.setCookie !== undefined) {
        const values = typeof res.headers.getSetCookie === "function" ? res.headers.getSetCookie() : [];
        if (values.length > 0) call.setCookie(values);
      }
      return value;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}
