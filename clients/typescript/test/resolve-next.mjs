// next-auth imports `next/server` and `next/headers` without an extension,
// as Next.js's bundler allows; Node's ESM resolver does not (Next.js has no
// `exports` map). Resolve those the way the bundler does, so the tests can
// load the real next-auth outside a Next.js build.
//
// Next.js's server also puts AsyncLocalStorage on globalThis before it loads
// anything of Next (`next/dist/server/node-environment-baseline`): without
// it `cookies()` and `headers()` have no request to read, even inside a
// route handler.
import { AsyncLocalStorage } from "node:async_hooks";
import { register } from "node:module";

if (typeof globalThis.AsyncLocalStorage !== "function") globalThis.AsyncLocalStorage = AsyncLocalStorage;

register(
  "data:text/javascript," +
    encodeURIComponent(`
      export async function resolve(specifier, context, next) {
        if (/^next\\/[a-z-]+$/.test(specifier)) return next(specifier + ".js", context);
        return next(specifier, context);
      }
    `),
);
