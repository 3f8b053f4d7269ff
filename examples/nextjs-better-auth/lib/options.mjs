// Better Auth's options that shape the database (shared by the app and by
// `npm run migrate`, which runs Better Auth's own migration).
import pg from "pg";
import { admin } from "better-auth/plugins";

/** Email and password, the admin plugin (role, ban), users and sessions in PostgreSQL. */
export function baseOptions() {
  return {
    database: new pg.Pool({ connectionString: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/app" }),
    emailAndPassword: { enabled: true },
    plugins: [admin()],
  };
}
