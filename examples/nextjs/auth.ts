// Auth.js with sessiond: the session cookie holds only the user id and
// sessiond's token; role and status come from sessiond on every request.
//
// Two ways to sign in:
// - email and password (Credentials): sessiond checks the password;
// - a link sent by email (Nodemailer): Auth.js checks the link, the
//   adapter's user is sessiond's, and the helper mints sessiond's token for
//   its id with the app key (`mint` scope).
import NextAuth, { CredentialsSignin } from "next-auth";
import { cookies } from "next/headers";
import Credentials from "next-auth/providers/credentials";
import Nodemailer from "next-auth/providers/nodemailer";
import { SessiondClient } from "@sessiond/client";
import { sessiondAuth } from "@sessiond/client/authjs";
// session.user.role, session.user.status and session.error, typed.
import type {} from "@sessiond/client/authjs-types";
import { sessiondAdapter } from "@/lib/sessiond-adapter";

// An app key with the `mint` and `admin` scopes (`sessiond appkey create
// --name nextjs --scope mint,admin`): server side only, never sent to a
// browser. Without one, email sign-in fails and Credentials still works.
const appKey = process.env.SESSIOND_APP_KEY || undefined;

export const sessiond = new SessiondClient({
  baseUrl: process.env.SESSIOND_URL ?? "http://127.0.0.1:8080",
  appKey,
});

// Session lookups give up after 1 s (the helper's default), sign-in after
// the client's 5 s; the sign-in errors extend this app's CredentialsSignin.
// `cookies`: each password sign-in keeps sessiond's device token in the
// browser's `sessiond-device` cookie and sends it back on its next
// sign-ins, so strangers guessing the password do not lock its owner out.
export const helper = sessiondAuth(sessiond, { CredentialsSignin, cookies });

export const { handlers, auth, signIn, signOut } = NextAuth({
  adapter: sessiondAdapter(sessiond, appKey, process.env.AUTH_STORE_FILE ?? ".data/auth-store.json"),
  providers: [
    Credentials({
      credentials: { email: { label: "Email" }, password: { label: "Password", type: "password" } },
      authorize: helper.authorize,
    }),
    Nodemailer({
      // Any SMTP server; in development the repository's sink
      // (`node scripts/smtp-sink.mjs`) prints the link instead of sending it.
      server: process.env.EMAIL_SERVER ?? "smtp://127.0.0.1:2525",
      from: process.env.EMAIL_FROM ?? "sign-in@localhost",
    }),
  ],
  session: { strategy: "jwt" },
  callbacks: helper.callbacks,
  events: helper.events,
  // Auth.js errors (an expired or used link: `Verification`) on the login page too.
  pages: { signIn: "/login", error: "/login" },
});
