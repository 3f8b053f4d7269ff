// Admin only: the middleware refuses other roles, and so does this page.
import { hasRole } from "@sessiond/client/authjs";
import { auth } from "@/auth";

export const dynamic = "force-dynamic";

export default async function Admin() {
  const session = await auth();
  if (!hasRole(session, "admin")) return <h1>This page needs the admin role.</h1>;
  return <h1>Admin page: your admin role was checked with sessiond on this request.</h1>;
}
