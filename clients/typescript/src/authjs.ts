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
 * const sessiond = sessiondAuth(new SessiondClient({ baseUrl: process.env.SESSIOND_URL! }));
 * export const { handlers, auth, signIn, signOut } = NextAuth({
 *   providers: [Credentials({ authorize: sessiond.authorize })],
 *   callbacks: sessiond.callbacks,
 *   events: sessiond.events,
 * });
 * ```
 *
 * No import of Auth.js: the parameter types below are the parts of Auth.js's
 * that the callbacks read, so they fit `NextAuth({ callbacks })` as they are.
 */

import { SessiondClient, SessiondError, type ErrorCode, type Session } from "./index.js";

/** What the Auth.js JWT holds: nothing but the user id and sessiond's token. */
export type SessiondJWT = {
  /** The user id (sessiond's), as a string. */
  sub: string;
  /** sessiond's bearer token. Never sent to the browser by `session()`. */
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
 * What `session()` answers (and so `auth()`, `useSession()`): with `user`
 * when sessiond resolved the token for this request; without it, and with
 * `error` saying why, when it could not (the request must then be denied).
 */
export type SessiondAuthSession = {
  user?: SessiondSessionUser;
  expires: string;
  /** Why there is no user: sessiond was unreachable or refused the token. */
  error?: ErrorCode;
};

/** The part of Auth.js's `jwt()` parameters that is read. */
export type JwtParams = {
  token: { [claim: string]: unknown; sub?: string };
  user?: { id?: string | null } | null;
  trigger?: "signIn" | "signUp" | "update";
};

/** The part of Auth.js's `session()` parameters that is read. */
export type SessionParams = {
  session: { expires?: unknown };
  token: { [claim: string]: unknown; sub?: string };
};

export type SessiondAuthOptions = {
  /**
   * Called when sessiond could not answer (down, slow, its database down):
   * the request is denied but the user stays signed in. The error carries
   * no token. Default: `console.warn` of its code and message.
   */
  onUnavailable?: (error: SessiondError) => void;
};

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

/**
 * Builds the Credentials `authorize`, the `jwt` and `session` callbacks and
 * the `signOut` event for Auth.js.
 */
export function sessiondAuth(client: SessiondClient, options: SessiondAuthOptions = {}) {
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
        ? await client.refreshSession(sessiondToken, { force: true })
        : await client.getSession(sessiondToken);
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
   * The Credentials provider's `authorize`: logs in to sessiond. Wrong
   * credentials or a deactivated account answer `null` (Auth.js's
   * "CredentialsSignin"); sessiond being unreachable throws.
   */
  async function authorize(credentials: Partial<Record<string, unknown>> | undefined): Promise<SessiondSignInUser | null> {
    const email = credentials?.["email"];
    const password = credentials?.["password"];
    if (typeof email !== "string" || typeof password !== "string") return null;
    try {
      const r = await client.login(email, password);
      return { id: String(r.user.id), email: r.user.email, sessiondToken: r.token };
    } catch (e) {
      if (e instanceof SessiondError && (e.code === "invalid_credentials" || e.code === "forbidden" || e.code === "bad_request")) {
        return null;
      }
      throw e;
    }
  }

  /**
   * Auth.js calls `jwt()` on sign-in (with `user`) and then on every request
   * that reads the session (`auth()`, middleware, `/api/auth/session`).
   * Answers `null`, which makes Auth.js delete the cookie, when sessiond
   * says the token no longer resolves.
   */
  async function jwt({ token, user, trigger }: JwtParams): Promise<SessiondJWT | null> {
    let next: SessiondJWT;
    if (user) {
      const sessiondToken = (user as { sessiondToken?: unknown }).sessiondToken;
      if (typeof sessiondToken !== "string") {
        throw new Error("sessiondAuth: the user did not sign in through sessiondAuth(...).authorize");
      }
      next = { sub: String(user.id ?? ""), sessiondToken };
    } else {
      const sessiondToken = token["sessiondToken"];
      if (typeof sessiondToken !== "string") return null;
      next = { sub: String(token.sub ?? ""), sessiondToken };
    }
    const r = await resolve(next.sessiondToken, trigger === "update");
    if (r === "signed-out") return null;
    if ("session" in r) next.sub = String(r.session.user.id);
    resolved.set(next, r);
    return next;
  }

  /**
   * Auth.js calls `session()` right after `jwt()` with the token `jwt()`
   * answered. Role and status come from sessiond's answer for this request;
   * sessiond's token is not copied into the session (it reaches the
   * browser through `useSession()`).
   */
  async function session({ session, token }: SessionParams): Promise<SessiondAuthSession> {
    const expires = isoString(session.expires);
    let r = resolved.get(token);
    if (r === undefined) {
      // Not answered by this helper's jwt() (another caller): resolve here.
      const sessiondToken = token["sessiondToken"];
      if (typeof sessiondToken !== "string") return { expires, error: "invalid_token" };
      const fresh = await resolve(sessiondToken, false);
      if (fresh === "signed-out") return { expires, error: "session_revoked" };
      r = fresh;
    }
    if ("error" in r) return { expires, error: r.error };
    const u = r.session.user;
    return { expires, user: { id: String(u.id), email: u.email, role: u.role, status: u.status } };
  }

  /** Auth.js's `signOut` event: the sessiond token is logged out too. */
  async function signOut(message: { token?: { [claim: string]: unknown } | null } | { session?: unknown }): Promise<void> {
    const token = "token" in message ? message.token : undefined;
    const sessiondToken = token?.["sessiondToken"];
    if (typeof sessiondToken !== "string") return;
    try {
      await client.logout(sessiondToken);
    } catch (e) {
      const err = toSessiondError(e);
      if (!err.signedOut) onUnavailable(err);
    }
  }

  return {
    authorize,
    callbacks: { jwt, session },
    events: { signOut },
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
