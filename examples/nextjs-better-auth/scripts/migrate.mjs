// Better Auth's own migration (its `user`, `session`, `account` and
// `verification` tables, with the admin plugin's columns) on DATABASE_URL.
import { getMigrations } from "better-auth/db/migration";
import { baseOptions } from "../lib/options.mjs";

const options = baseOptions();
try {
  const { runMigrations } = await getMigrations(options);
  await runMigrations();
  console.log("Better Auth's tables are up to date");
} finally {
  await options.database.end();
}
