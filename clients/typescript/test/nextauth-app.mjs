// A Next.js app's Auth.js set-up, made of the real packages (next-auth's
// `NextAuth()`, its route handlers and `auth()` wrapper, @auth/core's
// `Auth()`, the Credentials provider) and `sessiondAuth`, and a browser that
// drives it with the requests a browser and next-auth/react send.

import util from "node:util";

import NextAuth, { CredentialsSignin } from "next-auth";
import Credentials from "next-auth/providers/credentials";
import Nodemailer from "next-auth/providers/nodemailer";
import { decode } from "next-auth/jwt";
import { NextRequest } from "next/server.js";
import routeModule from "next/dist/server/route-modules/app-route/module.js";

import { sessiondAuth } from "../dist/authjs.js";

export const ORIGIN = "http://app.test";
const SECRET = "nextauth-tests-secret-0123456789abcdef";
const SESSION_COOKIE = "authjs.session-token";

/**
 * `NextAuth()` with sessiond's callbacks, as `examples/nextjs/auth.ts` has it.
 * `logged` collects what Auth.js logs as errors (the sign-in errors among
 * them); `unavailable` what the helper reports.
 */
export function makeApp(client, helperOptions = {}) {
  const logged = [];
  const unavailable = [];
  const helper = sessiondAuth(client, {
    CredentialsSignin,
    onUnavailable: (e) => unavailable.push(e),
    ...helperOptions,
  });
  const { handlers, auth } = NextAuth({
    secret: SECRET,
    trustHost: true,
    providers: [
      Credentials({
        credentials: { email: { label: "Email" }, password: { label: "Password", type: "password" } },
        authorize: helper.authorize,
      }),
    ],
    session: { strategy: "jwt" },
    callbacks: helper.callbacks,
    events: helper.events,
    pages: { signIn: "/login" },
    logger: { error: (e) => logged.push(e), warn: () => {}, debug: () => {} },
  });
  return { handlers, auth, helper, logged, unavailable };
}

/**
 * `handlers` served the way Next.js serves `app/api/auth/[...nextauth]/route.ts`:
 * through its own route module, which runs each request in Next's request
 * scope (so `cookies()` from `next/headers` works inside the handler) and
 * adds the cookies set through `cookies()` to the handler's answer.
 */
export function servedByNext(handlers) {
  const route = new routeModule.AppRouteRouteModule({
    userland: () => ({ GET: handlers.GET, POST: handlers.POST }),
    definition: {
      kind: "APP_ROUTE",
      page: "/api/auth/[...nextauth]/route",
      pathname: "/api/auth/[...nextauth]",
      filename: "route",
      bundlePath: "app/api/auth/[...nextauth]/route",
    },
    distDir: ".next",
    relativeProjectDir: "",
    resolvedPagePath: "app/api/auth/[...nextauth]/route.js",
    nextConfigOutput: undefined,
  });
  const context = { renderOpts: { experimental: {} }, sharedContext: { buildId: "test" }, previewProps: undefined };
  return {
    GET: (req) => route.handle(req, context),
    POST: (req) => route.handle(req, context),
  };
}

/**
 * `NextAuth()` with the email (Nodemailer) provider, an adapter and
 * sessiond's callbacks: no credentials at all. The message is not sent: its
 * link goes to `outbox`, where the test reads it as the user would.
 */
export function makeEmailApp(client, adapter) {
  const logged = [];
  const outbox = [];
  const helper = sessiondAuth(client, { CredentialsSignin, onUnavailable: () => {} });
  const { handlers, auth } = NextAuth({
    secret: SECRET,
    trustHost: true,
    adapter,
    providers: [
      Nodemailer({
        server: "smtp://127.0.0.1:9",
        from: "app@example.test",
        sendVerificationRequest: async ({ identifier, url }) => {
          outbox.push({ to: identifier, url });
        },
      }),
    ],
    session: { strategy: "jwt" },
    callbacks: helper.callbacks,
    events: helper.events,
    pages: { signIn: "/login" },
    logger: { error: (e) => logged.push(e), warn: () => {}, debug: () => {} },
  });
  return { handlers, auth, helper, logged, outbox };
}

/**
 * An Auth.js adapter whose users are sessiond's own (made through the admin
 * API), kept in memory with the verification tokens: the adapter's user id
 * is sessiond's. `users` is the table, `add(id, email)` registers one.
 */
export function memoryAdapter(client, adminToken) {
  const users = new Map();
  const tokens = new Map();
  const byEmail = (email) => [...users.values()].find((u) => u.email === email) ?? null;
  return {
    users,
    add(id, email) {
      users.set(String(id), { id: String(id), email, emailVerified: null });
    },
    async createUser(u) {
      const made = await client.createUser(adminToken, { email: u.email, password: "not-used-by-email-sign-in" });
      const user = { id: String(made.id), email: made.email, emailVerified: u.emailVerified ?? null };
      users.set(user.id, user);
      return user;
    },
    async getUser(id) {
      return users.get(String(id)) ?? null;
    },
    async getUserByEmail(email) {
      return byEmail(email);
    },
    async updateUser(u) {
      const user = { ...users.get(String(u.id)), ...u };
      users.set(String(u.id), user);
      return user;
    },
    async getUserByAccount() {
      return null;
    },
    async linkAccount() {},
    async createVerificationToken(t) {
      tokens.set(`${t.identifier}\n${t.token}`, t);
      return t;
    },
    async useVerificationToken({ identifier, token }) {
      const key = `${identifier}\n${token}`;
      const t = tokens.get(key) ?? null;
      tokens.delete(key);
      return t;
    },
  };
}

/** A browser of one end user (`ip` is what Next.js puts in X-Forwarded-For). */
export class Browser {
  constructor(app, { ip = "198.51.100.10", proto = "http" } = {}) {
    this.app = app;
    this.ip = ip;
    this.proto = proto;
    // Next.js builds the request's URL with the scheme X-Forwarded-Proto names.
    this.origin = `${proto}://${new URL(ORIGIN).host}`;
    /** @type {Map<string, string>} */
    this.cookies = new Map();
    /** @type {string[]} every Set-Cookie line received */
    this.setCookies = [];
  }

  request(path, init = {}) {
    const headers = new Headers(init.headers);
    // What Next.js's server sets on every request before Auth.js sees it.
    headers.set("host", new URL(ORIGIN).host);
    headers.set("x-forwarded-proto", this.proto);
    headers.set("x-forwarded-for", this.ip);
    if (this.cookies.size > 0) {
      headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    }
    return new NextRequest(this.origin + path, { ...init, headers });
  }

  /** Applies the answer's Set-Cookie headers, as a browser would; `setCookies` keeps the lines. */
  store(res) {
    for (const line of res.headers.getSetCookie()) {
      this.setCookies.push(line);
      const [pair, ...attrs] = line.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === "";
      if (gone) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  async get(path) {
    return this.store(await this.app.handlers.GET(this.request(path)));
  }

  async postForm(path, fields) {
    const body = new URLSearchParams(fields).toString();
    const req = this.request(path, {
      method: "POST",
      body,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    return this.store(await this.app.handlers.POST(req));
  }

  async csrfToken() {
    const res = await this.get("/api/auth/csrf");
    return (await res.json()).csrfToken;
  }

  /** The Credentials sign-in form: where Auth.js redirects to. */
  async signIn(email, password) {
    const csrfToken = await this.csrfToken();
    const res = await this.postForm("/api/auth/callback/credentials", {
      csrfToken,
      email,
      password,
      callbackUrl: this.origin + "/",
    });
    return new URL(res.headers.get("location") ?? "", this.origin);
  }

  /**
   * The email sign-in: asks for the link, then follows it from `outbox` as
   * the user would. Answers where Auth.js redirects to at the end.
   */
  async signInEmail(email, outbox) {
    const csrfToken = await this.csrfToken();
    const sent = outbox.length;
    await this.postForm("/api/auth/signin/nodemailer", { csrfToken, email, callbackUrl: this.origin + "/" });
    if (outbox.length !== sent + 1) throw new Error("no sign-in link was sent");
    const link = new URL(outbox[outbox.length - 1].url);
    const res = await this.get(link.pathname + link.search);
    return new URL(res.headers.get("location") ?? "", this.origin);
  }

  /** `auth((req) => …)` as middleware (or `proxy`): what `req.auth` was. */
  async auth(path = "/") {
    let seen;
    const handler = this.app.auth((req) => {
      seen = req.auth;
    });
    this.store(await handler(this.request(path)));
    return seen;
  }

  /** What `useSession()` and `getSession()` fetch. */
  async session() {
    const res = await this.get("/api/auth/session");
    return { status: res.status, body: await res.json() };
  }

  /** `useSession().update(data)`: a POST with the CSRF token; `update()` without data is a GET. */
  async update(data) {
    if (data === undefined) return (await this.session()).body;
    const csrfToken = await this.csrfToken();
    const req = this.request("/api/auth/session", {
      method: "POST",
      body: JSON.stringify({ csrfToken, data }),
      headers: { "content-type": "application/json" },
    });
    const res = this.store(await this.app.handlers.POST(req));
    return res.json();
  }

  async signOut() {
    const csrfToken = await this.csrfToken();
    return this.postForm("/api/auth/signout", { csrfToken, callbackUrl: this.origin + "/login" });
  }

  /** The session cookie, decoded with next-auth's own `decode`. */
  async cookieClaims() {
    const name = this.sessionCookieName();
    const token = this.cookies.get(name);
    if (token === undefined) return null;
    return decode({ token, secret: SECRET, salt: name });
  }

  /** Auth.js prefixes its cookie's name with `__Secure-` over https. */
  sessionCookieName() {
    return this.proto === "https" ? `__Secure-${SESSION_COOKIE}` : SESSION_COOKIE;
  }

  hasSessionCookie() {
    return this.cookies.has(this.sessionCookieName());
  }
}

/**
 * Fails when anything of sessiond's `token` (the whole token, its payload or
 * its signature) is in `value`, however deep, enumerable or not.
 */
export function assertNoToken(assert, value, token, what = "the session") {
  const parts = [token, ...token.split(".").slice(1)];
  const texts = [JSON.stringify(value) ?? "", util.inspect(value, { depth: null, showHidden: true, getters: true })];
  for (const text of texts) {
    assert.ok(!/sessiondToken/.test(text), `${what} names sessiondToken: ${text}`);
    for (const part of parts) assert.ok(!text.includes(part), `${what} carries sessiond's token: ${text}`);
  }
}

/** A `fetch` that records each request's method, path, body and X-Forwarded-For. */
export function recordingFetch() {
  const calls = [];
  const f = async (url, init = {}) => {
    const headers = new Headers(init.headers);
    calls.push({
      method: init.method ?? "GET",
      path: new URL(url).pathname,
      body: typeof init.body === "string" ? init.body : undefined,
      forwardedFor: headers.get("x-forwarded-for"),
    });
    return fetch(url, init);
  };
  f.calls = calls;
  return f;
}
