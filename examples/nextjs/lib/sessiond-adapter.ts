// An Auth.js adapter whose users are sessiond's own: a user who signs in by
// email for the first time is created in sessiond (with the app key's
// `admin` scope), so the adapter's user id is sessiond's, and the sign-in
// mints sessiond's token for it (`mint` scope, see auth.ts).
//
// sessiond has no look-up by email, so this adapter keeps, in one JSON
// file, which sessiond id each email address signed up as, plus Auth.js's
// one-time verification tokens (stored hashed by Auth.js). That is enough
// for one app server; with several, keep the same two tables in the app's
// database (any Auth.js database adapter does).
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Adapter, AdapterUser, VerificationToken } from "next-auth/adapters";
import { SessiondError, type SessiondClient } from "@sessiond/client";

type Stored = {
  /** email (lower case) → sessiond's user id and when the address was verified. */
  users: Record<string, { id: string; emailVerified: string | null }>;
  /** `identifier \n hashed token` → the token. */
  tokens: Record<string, { identifier: string; token: string; expires: string }>;
};

export function sessiondAdapter(client: SessiondClient, appKey: string | undefined, file: string): Adapter {
  let queue: Promise<unknown> = Promise.resolve();

  async function load(): Promise<Stored> {
    try {
      const parsed = JSON.parse(await readFile(file, "utf8")) as Partial<Stored>;
      return { users: parsed.users ?? {}, tokens: parsed.tokens ?? {} };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { users: {}, tokens: {} };
      throw e;
    }
  }
  /** Runs `change` on the file's contents, one change at a time, and writes it back atomically. */
  function update<T>(change: (s: Stored) => T | Promise<T>): Promise<T> {
    const run = queue.then(async () => {
      const s = await load();
      const out = await change(s);
      await mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(s), { mode: 0o600 });
      await rename(tmp, file);
      return out;
    });
    queue = run.catch(() => {});
    return run;
  }
  function key(): string {
    if (!appKey) throw new Error("sessiondAdapter: set SESSIOND_APP_KEY (an app key with the mint and admin scopes)");
    return appKey;
  }
  function toUser(email: string, u: Stored["users"][string]): AdapterUser {
    return { id: u.id, email, emailVerified: u.emailVerified ? new Date(u.emailVerified) : null };
  }

  return {
    async createUser(user) {
      const email = user.email.toLowerCase();
      let made;
      try {
        // A password nobody knows: this user signs in by email only.
        made = await client.createUser(key(), { email, password: randomBytes(32).toString("base64url") });
      } catch (e) {
        if (e instanceof SessiondError && e.code === "conflict") {
          throw new Error(`${email} already has a sessiond account: it signs in with its password`, { cause: e });
        }
        throw e;
      }
      const stored = { id: String(made.id), emailVerified: user.emailVerified?.toISOString() ?? null };
      await update((s) => {
        s.users[email] = stored;
      });
      return toUser(email, stored);
    },
    async getUser(id) {
      const s = await load();
      const found = Object.entries(s.users).find(([, u]) => u.id === id);
      return found ? toUser(found[0], found[1]) : null;
    },
    async getUserByEmail(email) {
      const u = (await load()).users[email.toLowerCase()];
      return u ? toUser(email.toLowerCase(), u) : null;
    },
    async updateUser(user) {
      return update((s) => {
        const found = Object.entries(s.users).find(([, u]) => u.id === user.id);
        if (!found) throw new Error(`sessiondAdapter: no user ${user.id}`);
        const [email, stored] = found;
        if (user.emailVerified !== undefined) stored.emailVerified = user.emailVerified?.toISOString() ?? null;
        return toUser(email, stored);
      });
    },
    // Only email sign-in here: no OAuth accounts to link.
    async getUserByAccount() {
      return null;
    },
    async createVerificationToken(t: VerificationToken) {
      await update((s) => {
        const now = Date.now();
        for (const [k, v] of Object.entries(s.tokens)) if (Date.parse(v.expires) < now) delete s.tokens[k];
        s.tokens[`${t.identifier}\n${t.token}`] = { ...t, expires: t.expires.toISOString() };
      });
      return t;
    },
    async useVerificationToken({ identifier, token }) {
      return update((s) => {
        const k = `${identifier}\n${token}`;
        const t = s.tokens[k];
        delete s.tokens[k];
        return t ? { identifier: t.identifier, token: t.token, expires: new Date(t.expires) } : null;
      });
    },
  };
}
