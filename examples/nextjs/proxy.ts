// Every request to a protected page asks sessiond who the user is now:
// a deactivated user is sent to /login, a demoted admin loses /admin at once,
// and while sessiond cannot answer the page is refused (503) without
// signing anyone out.
import { NextResponse } from "next/server";
import { hasRole } from "@sessiond/client/authjs";
import { auth } from "@/auth";

/** The page shown while sessiond cannot answer (see README.md). */
const UNAVAILABLE = `<!doctype html><title>Try again shortly</title>
<h1>Sign-in service unavailable</h1>
<p>Your session could not be checked just now. You are still signed in: reload in a moment.</p>`;

export const proxy = auth((req) => {
  const session = req.auth;
  if (session && !session.user && session.error) {
    return new NextResponse(UNAVAILABLE, {
      status: 503,
      headers: { "content-type": "text/html; charset=utf-8", "retry-after": "5", "cache-control": "no-store" },
    });
  }
  if (!hasRole(session)) return NextResponse.redirect(new URL("/login", req.nextUrl.origin));
  if (req.nextUrl.pathname.startsWith("/admin") && !hasRole(session, "admin")) {
    return new NextResponse("this page needs the admin role\n", { status: 403 });
  }
  return NextResponse.next();
});

export const config = { matcher: ["/", "/admin/:path*"] };
