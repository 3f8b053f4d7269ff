import type { Pool } from "pg";
import type { admin } from "better-auth/plugins";

export function baseOptions(): {
  database: Pool;
  emailAndPassword: { enabled: true };
  plugins: [ReturnType<typeof admin>];
};
