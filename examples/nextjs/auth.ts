// Auth.js with sessiond: the session cookie holds only the user id and
// sessiond's token; role and status come from sessiond on every request.
import NextAuth from "next-auth";
import Credentials from "next-auth/providers/credentials";
import { SessiondClient } from "@sessiond/client";
import { sessiondAuth } from "@sessiond/client/authjs";

export const sessiond = new SessiondClient({
  baseUrl: process.env.SESSIOND_URL ?? "http://127.0.0.1:8080",
  timeoutMs: 2000,
});

const helper = sessiondAuth(sessiond);

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
