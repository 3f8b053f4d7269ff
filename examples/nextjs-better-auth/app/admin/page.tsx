// Admin only: proxy.ts refuses other roles, and so does this page.
import { headers } from "next/headers";
import { getSession } from "@/lib/auth";

export const dynamic = "force-dynamic";

export default async function Admin() {
  const s = await getSession(await headers());
  if (s?.user.role !== "admin") return <h1>This page needs the admin role.</h1>;
  return <h1>Admin page: your admin role was checked with sessiond on this request.</h1>;
}
