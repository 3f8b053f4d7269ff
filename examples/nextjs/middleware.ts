// Every request to a protected page asks sessiond who the user is now:
// a deactivated user is sent to /login, a demoted admin loses /admin at once.
import { NextResponse } from "next/server";
import { hasRole } from "@sessiond/client/authjs";
import { auth } from "@/auth";

export default auth((req) => {
  const session = req.auth;
  if (!hasRole(session)) {
    const login = new URL("/login", req.nextUrl.origin);
    if (session && "error" in session && session.error) login.searchParams.set("error", String(session.error));
    return NextResponse.redirect(login);
  }
  if (req.nextUrl.pathname.startsWith("/admin") && !hasRole(session, "admin")) {
    return new NextResponse("this page needs the admin role\n", { status: 403 });
  }
  return NextResponse.next();
});

export const config = { matcher: ["/", "/admin/:path*"] };
