// Auth.js with sessiond: the session cookie holds only the user id and
// sessiond's token; role and status come from sessiond on every request.
import NextAuth, { CredentialsSignin } from "next-auth";
import Credentials from "next-auth/providers/credentials";
import { SessiondClient } from "@sessiond/client";
import { sessiondAuth } from "@sessiond/client/authjs";
// session.user.role, session.user.status and session.error, typed.
import type {} from "@sessiond/client/authjs-types";

export const sessiond = new SessiondClient({
  baseUrl: process.env.SESSIOND_URL ?? "http://127.0.0.1:8080",
});

// Session lookups give up after 1 s (the helper's default), sign-in after
// the client's 5 s; the sign-in errors extend this app's CredentialsSignin.
export const helper = sessiondAuth(sessiond, { CredentialsSignin });

export const { handlers, auth, signIn, signOut } = NextAuth({
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
});
