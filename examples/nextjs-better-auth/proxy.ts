// Every request to a protected page asks sessiond for the session (no
// query to the app's database): a banned or signed-out user is sent to
// /sign-in, a demoted admin loses /admin at once, and while sessiond cannot
// answer the page is refused (503) without signing anyone out.
import { NextResponse, type NextRequest } from "next/server";
import { resolveSession } from "@/lib/auth";

/** The page shown while sessiond cannot answer (see README.md). */
const UNAVAILABLE = `<!doctype html><title>Try again shortly</title>
<h1>Sign-in service unavailable</h1>
<p>Your session could not be checked just now. You are still signed in: reload in a moment.</p>`;

export async function proxy(request: NextRequest) {
  const r = await resolveSession(request.headers);
  if (r.unavailable) {
    return new NextResponse(UNAVAILABLE, {
      status: 503,
      headers: { "content-type": "text/html; charset=utf-8", "retry-after": "5", "cache-control": "no-store" },
    });
  }
  if (!r.data) return NextResponse.redirect(new URL("/sign-in", request.nextUrl.origin));
  const response =
    request.nextUrl.pathname.startsWith("/admin") && r.data.user.role !== "admin"
      ? new NextResponse("this page needs the admin role\n", { status: 403 })
      : NextResponse.next();
  // sessiond slid the session's expiry: re-set the cookie, as Better Auth would.
  for (const cookie of r.setCookie) response.headers.append("set-cookie", cookie);
  return response;
}

export const config = { matcher: ["/", "/admin/:path*"] };
