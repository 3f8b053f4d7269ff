// Better Auth with sessiond: Better Auth signs users in and writes its
// `user` and `session` tables as usual; sessiond answers getSession for
// every request from memory, exactly as the tables are now (a role change,
// a ban, a sign-out is seen on the next request, on every node), and the
// sessiond plugin makes each call that changes sessions return only once
// every sessiond node dropped the old state.
import { betterAuth } from "better-auth";
import { nextCookies } from "better-auth/next-js";
import { sessiond, sessiondSessions } from "@sessiond/client/better-auth";
import { baseOptions } from "@/lib/options.mjs";

const sessiondUrl = process.env.SESSIOND_URL ?? "http://127.0.0.1:8080";

function makeAuth() {
  const base = baseOptions();
  return betterAuth({
    ...base,
    // The same secret sessiond is given (`SESSIOND_BETTER_AUTH_SECRET`):
    // it checks the cookie's signature with it.
    secret: process.env.BETTER_AUTH_SECRET,
    plugins: [
      ...base.plugins,
      // An app key with the `admin` scope (`sessiond appkey create --name
      // nextjs-better-auth --scope admin`): server side only.
      sessiond({ url: sessiondUrl, appKey: process.env.SESSIOND_APP_KEY ?? "" }),
      // Sets the cookies of auth.api calls made in server actions.
      nextCookies(),
    ],
  });
}

let made: ReturnType<typeof makeAuth> | undefined;
/**
 * The Better Auth instance, made on first use (at run time, where
 * SESSIOND_APP_KEY and the database are given; not while `next build`
 * collects the pages).
 */
export function auth(): ReturnType<typeof makeAuth> {
  made ??= makeAuth();
  return made;
}

/**
 * `getSession(headers)`: Better Auth's `{ session, user }` or null,
 * answered by sessiond from the request's session cookie. Null also when
 * sessiond cannot answer within 1 s: deny the request, the cookie is kept
 * (`resolveSession` says which: `unavailable`).
 */
export const { getSession, resolveSession } = sessiondSessions({ url: sessiondUrl });
