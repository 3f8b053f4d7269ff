/**
 * Auth.js (NextAuth v5) callbacks backed by sessiond.
 *
 * The Auth.js JWT (the session cookie) keeps only the user id (`sub`) and
 * sessiond's token (`sessiondToken`). Role and status are never stored in
 * it: `jwt()` resolves sessiond's token on every request, so a demoted user
 * has the new role on the next request and a deactivated, deleted, logged
 * out or revoked one is signed out on the next request.
 *
 * ```ts
 * import NextAuth, { CredentialsSignin } from "next-auth";
 * const sessiond = sessiondAuth(new SessiondClient({ baseUrl: process.env.SESSIOND_URL! }), { CredentialsSignin });
 * export const { handlers, auth, signIn, signOut } = NextAuth({
 *   providers: [Credentials({ authorize: sessiond.authorize })],
 *   callbacks: sessiond.callbacks,
 *   events: sessiond.events,
 * });
 * ```
 *
 * A password sign-in keeps sessiond's device token in a cookie of its own
 * (`sessiond-device`, httpOnly) when the app hands in a cookie store
 * (`sessiondAuth(client, { CredentialsSignin, cookies })`, with Next.js's
 * `cookies` from `next/headers`), and sends it back on that browser's next
 * sign-ins: strangers who exhaust the account's failed-login limit do not
 * lock that browser out.
 *
 * Any other provider (OAuth, email, passkey) works too: on sign-in, `jwt()`
 * gets the adapter's user from Auth.js and mints sessiond's token for its id
 * with the client's app key (`new SessiondClient({ baseUrl, appKey })`, an
 * app key with the `mint` scope; server side only). From then on every
 * request is resolved with sessiond as for a credentials sign-in.
 *
 * No import of Auth.js: the parameter types below are the parts of Auth.js's
 * that the callbacks read, so they fit `NextAuth({ callbacks })` as they are,
 * and Auth.js's `CredentialsSignin` is handed in, so that the sign-in errors
 * are subclasses of the very class the app's Auth.js checks for.
 */

import { SessiondClient, SessiondError, type ErrorCode, type Session } from "./index.js";

/** What the Auth.js JWT holds: nothing but the user id and sessiond's token. */
export type SessiondJWT = {
  /** The user id (sessiond's), as a string. */
  sub: string;
  /** sessiond's bearer token. Never copied into a session by `session()`. */
  sessiondToken: string;
};

/** The user `authorize()` hands Auth.js at sign-in. */
export type SessiondSignInUser = {
  id: string;
  email: string;
  sessiondToken: string;
};

/** `session.user`, as sessiond answered it for this request. */
export type SessiondSessionUser = {
  id: string;
  email: string;
  role: string;
  status: "active" | "deactivated";
};

/**
 * What `session()` answers (and so `auth()`, `/api/auth/session` and
 * `useSession()`):
 *
 * - `{ user: {id, email, role, status}, expires }` when sessiond resolved the
 *   token for this request;
 * - `{ user: null, expires, error }` when it could not (sessiond down, slow,
 *   its database down): the request must be denied, the cookie is kept.
 *
 * `user` is `null`, explicitly, in every answer without a user: next-auth's
 * `auth()` fills a missing `user` from the JWT, which holds sessiond's token.
 * It is typed optional, not nullable, because Auth.js's own `Session` type
 * (which this callback must fit) has no `null` user: test it with
 * `session?.user` (or {@link hasRole}), never with `=== undefined`.
 */
export type SessiondAuthSession = {
  user?: SessiondSessionUser;
  expires: string;
  /** Why there is no user. */
  error?: ErrorCode;
};

/** The part of Auth.js's `jwt()` parameters that is read. */
export type JwtParams = {
  token: { [claim: string]: unknown; sub?: string };
  user?: { id?: string | number | null } | null;
  /** Present on sign-in: which provider signed the user in. */
  account?: { provider?: string; type?: string } | null;
  trigger?: "signIn" | "signUp" | "update";
};

/** The part of Auth.js's `session()` parameters that is read. */
export type SessionParams = {
  session: { expires?: unknown };
  token: { [claim: string]: unknown; sub?: string };
};

/**
 * Auth.js's `CredentialsSignin` (`import { CredentialsSignin } from
 * "next-auth"`, or from `@auth/core/errors`). An error of this class thrown by
 * `authorize` is shown as `?error=CredentialsSignin&code=<its code>` (and
 * rethrown as it is by next-auth's `signIn()` server action); any other error
 * becomes Auth.js's "Configuration" page.
 */
export type CredentialsSigninClass = new (
  message?: string,
  options?: { cause?: unknown },
) => Error & { code: string };

/** The attributes the device cookie is set with. */
export type DeviceCookieOptions = {
  httpOnly: true;
  sameSite: "lax";
  path: "/";
  /** When the app is served over https (the URL Auth.js hands `authorize`). */
  secure: boolean;
  /** 30 days, in seconds: the device token's own lifetime. */
  maxAge: number;
};

/**
 * The part of a response's cookie store that is used: what Next.js's
 * `cookies()` (from `next/headers`) answers in a route handler or a server
 * action, or any object with such a `set`.
 */
export type DeviceCookieStore = {
  set(name: string, value: string, options: DeviceCookieOptions): unknown;
};

/** The device cookie's default name. */
export const DEVICE_COOKIE = "sessiond-device";

/** The device cookie's lifetime, in seconds: that of sessiond's device tokens. */
export const DEVICE_COOKIE_MAX_AGE = 30 * 24 * 60 * 60;

export type SessiondAuthOptions = {
  /** Auth.js's `CredentialsSignin`, which the sign-in errors extend (required). */
  CredentialsSignin: CredentialsSigninClass;
  /**
   * Time allowed for one session lookup (every request that reads the
   * session, and sign-out), in ms. Default 1000: see the README ("Timeouts").
   * Sign-in keeps the client's own timeout.
   */
  sessionTimeoutMs?: number;
  /**
   * The end user's address for a sign-in, from the request Auth.js hands
   * `authorize`. Default: the hop of its `X-Forwarded-For` that your own
   * proxies appended (see `proxyHops`), or none. Answer `null` to send none.
   */
  clientAddress?: (request: Request | undefined) => string | null | undefined;
  /**
   * How many proxies of yours stand in front of the app and append to
   * `X-Forwarded-For` (a load balancer, a CDN): the default `clientAddress`
   * passes on the hop the outermost of them appended, the `proxyHops`-th
   * from the right. Default 0: no address is passed, since without a proxy
   * of yours every hop may have been written by the browser itself.
   */
  proxyHops?: number;
  /**
   * The cookie store of the sign-in's response, where `authorize` keeps the
   * device token a password login answers: Next.js's `cookies` from
   * `next/headers` (`sessiondAuth(client, { CredentialsSignin, cookies })`),
   * which Next.js adds to the answer of the route handler or server action
   * that signed in. Without it no device cookie is set, and every sign-in
   * counts as a stranger's (see the README, "Known devices").
   */
  cookies?: () => DeviceCookieStore | Promise<DeviceCookieStore>;
  /** The device cookie's name. Default `sessiond-device` ({@link DEVICE_COOKIE}). */
  deviceCookie?: string;
  /**
   * Called when sessiond could not answer (down, slow, its database down):
   * the request is denied but the user stays signed in. The error carries
   * no token. Default: `console.warn` of its code and message.
   */
  onUnavailable?: (error: SessiondError) => void;
};

/** The `code` of a sign-in refused by the failed-login limits. */
export const RATE_LIMITED = "rate_limited";
/** The `code` of a sign-in that failed because sessiond could not answer. */
export const SESSIOND_UNAVAILABLE = "sessiond_unavailable";

type Resolution = { session: Session } | { error: ErrorCode };

function toSessiondError(e: unknown): SessiondError {
  return e instanceof SessiondError
    ? e
    : new SessiondError("unexpected_response", 0, e instanceof Error ? e.message : "unknown error", { cause: e });
}

function isoString(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Date) return value.toISOString();
  return new Date().toISOString();
}

/** The two sign-in errors, as subclasses of the app's own `CredentialsSignin`. */
function signInErrors(Base: CredentialsSigninClass) {
  /** Too many failed logins for this account or address: try after `retryAfter` s. */
  class SessiondRateLimited extends Base {
    override code = RATE_LIMITED;
    /** Seconds until sessiond accepts a login again (its `Retry-After`), if it said. */
    readonly retryAfter: number | undefined;
    constructor(retryAfter: number | undefined) {
      super(
        retryAfter === undefined
          ? "too many failed logins: try again later"
          : `too many failed logins: try again in ${retryAfter} s`,
      );
      this.retryAfter = retryAfter;
    }
  }
  /** sessiond could not answer the login: the same sign-in may work later. */
  class SessiondUnavailable extends Base {
    override code = SESSIOND_UNAVAILABLE;
    constructor(cause: SessiondError) {
      super(`sessiond could not answer the login (${cause.code})`, { cause });
    }
  }
  return { RateLimited: SessiondRateLimited, Unavailable: SessiondUnavailable };
}

/** Login answers that mean "these credentials do not sign in" (Auth.js's own `CredentialsSignin`). */
const REFUSED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "invalid_credentials",
  "forbidden",
  "bad_request",
  "payload_too_large",
]);

/**
 * Builds the Credentials `authorize`, the `jwt` and `session` callbacks and
 * the `signOut` event for Auth.js.
 */
export function sessiondAuth(client: SessiondClient, options: SessiondAuthOptions) {
  if (typeof options?.CredentialsSignin !== "function") {
    throw new TypeError(
      'sessiondAuth: pass Auth.js\'s CredentialsSignin: sessiondAuth(client, { CredentialsSignin }) with import { CredentialsSignin } from "next-auth"',
    );
  }
  const errors = signInErrors(options.CredentialsSignin);
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 1000;
  const proxyHops = options.proxyHops ?? 0;
  if (!Number.isInteger(proxyHops) || proxyHops < 0) {
    throw new TypeError("sessiondAuth: proxyHops is a whole number of proxies, 0 or more");
  }
  const clientAddress =
    options.clientAddress ??
    ((request: Request | undefined) => appendedHop(request?.headers?.get("x-forwarded-for"), proxyHops));
  const deviceCookie = options.deviceCookie ?? DEVICE_COOKIE;
  if (typeof deviceCookie !== "string" || !COOKIE_NAME.test(deviceCookie)) {
    throw new TypeError("sessiondAuth: deviceCookie is a cookie name (letters, digits and !#$%&'*+-.^_`|~)");
  }
  const cookieStore = options.cookies;
  if (cookieStore !== undefined && typeof cookieStore !== "function") {
    throw new TypeError('sessiondAuth: cookies is a function answering the cookie store: import { cookies } from "next/headers"');
  }
  const onUnavailable =
    options.onUnavailable ??
    ((e: SessiondError) => console.warn(`sessiond: session not resolved (${e.code}): ${e.message}`));

  // What `jwt()` resolved for a token object, handed to the `session()` call
  // that Auth.js makes next with that same object: one sessiond call per
  // request, and nothing of it is written into the cookie.
  const resolved = new WeakMap<object, Resolution>();

  async function resolve(sessiondToken: string, force: boolean): Promise<Resolution | "signed-out"> {
    try {
      const session = force
        ? await client.refreshSession(sessiondToken, { force: true, timeoutMs: sessionTimeoutMs })
        : await client.getSession(sessiondToken, { timeoutMs: sessionTimeoutMs });
      if (session.user.status !== "active") return "signed-out";
      return { session };
    } catch (e) {
      const err = toSessiondError(e);
      if (err.signedOut) return "signed-out";
      onUnavailable(err);
      return { error: err.code };
    }
  }

  /**
   * Keeps the device token of a password login in the browser's device
   * cookie. A store that refuses it does not fail the sign-in: the browser
   * stays a stranger, and the warning names neither the token nor the user.
   */
  async function keepDevice(device: string | undefined, request: Request | undefined): Promise<void> {
    if (cookieStore === undefined || typeof device !== "string" || !DEVICE_TOKEN.test(device)) return;
    const secure = servedOverHttps(request);
    try {
      const store = await cookieStore();
      store.set(deviceCookie, device, { httpOnly: true, sameSite: "lax", path: "/", secure, maxAge: DEVICE_COOKIE_MAX_AGE });
    } catch (e) {
      const name = e instanceof Error ? e.name : typeof e;
      console.warn(`sessiond: the device cookie was not set (${name}): this browser's sign-ins count as a stranger's`);
    }
  }

  /**
   * The Credentials provider's `authorize`: logs in to sessiond, passing
   * the end user's address and the browser's device token (its device
   * cookie), and keeps the device token sessiond answers in that cookie
   * (with a `cookies` store). Wrong credentials or a deactivated account
   * answer `null` (Auth.js's `CredentialsSignin`, code `credentials`); too
   * many failures throw `errors.RateLimited` (code `rate_limited`, with
   * `retryAfter`); sessiond unreachable or failing throws
   * `errors.Unavailable` (code `sessiond_unavailable`). Any other answer
   * (a wrong `baseUrl`, say) throws the `SessiondError`: a configuration
   * error.
   */
  async function authorize(
    credentials: Partial<Record<string, unknown>> | undefined,
    request?: Request,
  ): Promise<SessiondSignInUser | null> {
    const email = credentials?.["email"];
    const password = credentials?.["password"];
    if (typeof email !== "string" || typeof password !== "string") return null;
    try {
      const r = await client.login(email, password, {
        clientAddress: clientAddress(request) ?? null,
        device: requestCookie(request, deviceCookie),
      });
      await keepDevice(r.device, request);
      return { id: String(r.user.id), email: r.user.email, sessiondToken: r.token };
    } catch (e) {
      if (!(e instanceof SessiondError)) throw e;
      if (REFUSED.has(e.code)) return null;
      if (e.code === "rate_limited") throw new errors.RateLimited(e.retryAfter);
      if (e.unavailable) throw new errors.Unavailable(e);
      throw e;
    }
  }

  /**
   * A sign-in through any provider but this helper's `authorize`: sessiond's
   * token for the adapter's user id, minted with the client's app key.
   * A user sessiond refuses (unknown, deactivated) is not signed in
   * (`null`: Auth.js sets no cookie); sessiond unreachable, or no app key,
   * is an error (Auth.js's error page): the user may try again.
   */
  async function minted(userId: string | number | null | undefined): Promise<SessiondJWT | null> {
    if (userId === null || userId === undefined || userId === "") {
      throw new Error("sessiondAuth: the signed-in user has no id (configure an Auth.js adapter)");
    }
    try {
      const r = await client.mintSession(userId);
      return { sub: String(r.user.id), sessiondToken: r.token };
    } catch (e) {
      if (e instanceof SessiondError && (e.code === "not_found" || e.code === "forbidden")) return null;
      throw e;
    }
  }

  /**
   * Auth.js calls `jwt()` on sign-in (with `user`: straight after
   * `authorize`, or the adapter's user for any other provider, which is
   * then minted sessiond's token) and then on every request that reads the session
   * (`auth()`, middleware/proxy, `/api/auth/session`), where the token is
   * resolved with sessiond. Answers `null`, which makes Auth.js delete the
   * cookie, when sessiond says the token no longer resolves. With
   * `trigger: "update"` (`update(data)`, a POST) sessiond re-reads the
   * database; `data` itself is ignored, so a browser cannot set its role.
   */
  async function jwt({ token, user, trigger }: JwtParams): Promise<SessiondJWT | null> {
    if (user) {
      const sessiondToken = (user as { sessiondToken?: unknown }).sessiondToken;
      // sessiond has just answered the login (or the minting); the next
      // request resolves it.
      if (typeof sessiondToken === "string") return { sub: String(user.id ?? ""), sessiondToken };
      return minted(user.id);
    }
    const sessiondToken = token["sessiondToken"];
    if (typeof sessiondToken !== "string") return null;
    const next: SessiondJWT = { sub: String(token.sub ?? ""), sessiondToken };
    const r = await resolve(sessiondToken, trigger === "update");
    if (r === "signed-out") return null;
    if ("session" in r) next.sub = String(r.session.user.id);
    resolved.set(next, r);
    return next;
  }

  /** The answer without a user: `user: null` is explicit (see {@link SessiondAuthSession}). */
  function denied(expires: string, error: ErrorCode): SessiondAuthSession {
    return { user: null as unknown as undefined, expires, error };
  }

  /**
   * Auth.js calls `session()` right after `jwt()` with the token `jwt()`
   * answered. Role and status come from sessiond's answer for this request;
   * nothing of sessiond's token is copied into the session (it reaches the
   * browser through `useSession()`).
   */
  async function session({ session, token }: SessionParams): Promise<SessiondAuthSession> {
    const expires = isoString(session.expires);
    let r = resolved.get(token);
    if (r === undefined) {
      // Not answered by this helper's jwt() (another caller): resolve here.
      const sessiondToken = token["sessiondToken"];
      if (typeof sessiondToken !== "string") return denied(expires, "invalid_token");
      const fresh = await resolve(sessiondToken, false);
      if (fresh === "signed-out") return denied(expires, "session_revoked");
      r = fresh;
    }
    if ("error" in r) return denied(expires, r.error);
    const u = r.session.user;
    return { expires, user: { id: String(u.id), email: u.email, role: u.role, status: u.status } };
  }

  /** Auth.js's `signOut` event: the sessiond token is logged out too. */
  async function signOut(message: { token?: { [claim: string]: unknown } | null } | { session?: unknown }): Promise<void> {
    const token = "token" in message ? message.token : undefined;
    const sessiondToken = token?.["sessiondToken"];
    if (typeof sessiondToken !== "string") return;
    try {
      await client.logout(sessiondToken, { timeoutMs: sessionTimeoutMs });
    } catch (e) {
      const err = toSessiondError(e);
      if (!err.signedOut) onUnavailable(err);
    }
  }

  return {
    authorize,
    callbacks: { jwt, session },
    events: { signOut },
    /** The sign-in errors `authorize` throws, for `instanceof` in a server action. */
    errors,
  };
}

/** The value `sessiondAuth` answers. */
export type SessiondAuth = ReturnType<typeof sessiondAuth>;

/**
 * `session` (what `auth()` answers) has an active user whose role is one of
 * `roles`, or any role when none is given.
 */
export function hasRole(
  session: { user?: object | null } | null | undefined,
  ...roles: string[]
): boolean {
  const user = session?.user as { role?: unknown; status?: unknown } | null | undefined;
  if (!user || user.status !== "active" || typeof user.role !== "string") return false;
  return roles.length === 0 || roles.includes(user.role);
}

/**
 * The hop of an `X-Forwarded-For` value that the outermost of `hops`
 * proxies appended: the `hops`-th from the right (hops left of it may have
 * been written by the browser). None for 0 hops or a shorter chain.
 */
export function appendedHop(header: string | null | undefined, hops: number): string | null {
  if (hops < 1 || typeof header !== "string") return null;
  const entries = header.split(",").map((h) => h.trim());
  if (entries.length < hops) return null;
  const hop = entries[entries.length - hops];
  return hop === undefined || hop === "" ? null : hop;
}

/** A cookie name: an RFC 6265 token. */
const COOKIE_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

/** What a device token may look like: a JWT's characters, within a cookie's size. */
const DEVICE_TOKEN = /^[A-Za-z0-9_.-]{1,3800}$/;

/**
 * The value of the first cookie named `name` in the request's `Cookie`
 * header, when it may be a device token; else `null`. No other cookie is
 * read.
 */
function requestCookie(request: Request | undefined, name: string): string | null {
  const header = request?.headers?.get("cookie");
  if (typeof header !== "string") return null;
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    try {
      value = decodeURIComponent(value);
    } catch {
      return null;
    }
    return DEVICE_TOKEN.test(value) ? value : null;
  }
  return null;
}

/** The sign-in was made over https: the URL Auth.js built for it (its own `useSecureCookies` test). */
function servedOverHttps(request: Request | undefined): boolean {
  try {
    return request !== undefined && new URL(request.url).protocol === "https:";
  } catch {
    return false;
  }
}
