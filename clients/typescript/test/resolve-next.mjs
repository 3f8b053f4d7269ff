// next-auth imports `next/server` and `next/headers` without an extension,
// as Next.js's bundler allows; Node's ESM resolver does not (Next.js has no
// `exports` map). Resolve those the way the bundler does, so the tests can
// load the real next-auth outside a Next.js build.
import { register } from "node:module";

register(
  "data:text/javascript," +
    encodeURIComponent(`
      export async function resolve(specifier, context, next) {
        if (/^next\\/[a-z-]+$/.test(specifier)) return next(specifier + ".js", context);
        return next(specifier, context);
      }
    `),
);
