/**
 * The session type of Auth.js (and so of next-auth's `auth()` and
 * `useSession()`) as `sessiondAuth` answers it, so that `session.user.role`,
 * `session.user.status` and `session.error` type-check without casts.
 * Opt in once, anywhere the app's TypeScript sees (e.g. `auth.ts`):
 *
 * ```ts
 * import type {} from "@sessiond/client/authjs-types";
 * ```
 *
 * `session.user` is typed optional (Auth.js's `Session` cannot say `null`);
 * at run time it is `null` whenever the request must be denied, so test it
 * with `session?.user`.
 */

import type {} from "@auth/core/types";
import type { ErrorCode } from "./index.js";
import type { SessiondSessionUser } from "./authjs.js";

declare module "@auth/core/types" {
  interface Session {
    user?: SessiondSessionUser;
    /** Why there is no user (sessiond down, slow, or the token refused). */
    error?: ErrorCode;
  }
}
