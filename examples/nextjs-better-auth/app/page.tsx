// A server component: getSession() asks sessiond, so the role shown here is
// the user's role as of this request, not as of sign-in.
import Link from "next/link";
import { headers } from "next/headers";
import { redirect } from "next/navigation";
import { auth, getSession } from "@/lib/auth";

export const dynamic = "force-dynamic";

export default async function Home() {
  const s = await getSession(await headers());
  if (!s) {
    return (
      <p>
        Not signed in. <Link href="/sign-in">Sign in</Link>
      </p>
    );
  }
  const role = s.user.role ?? "user";
  return (
    <main>
      <h1>Hello, {s.user.email}</h1>
      <p>
        role <b>{role}</b> (user {s.user.id}), read from sessiond for this request.
      </p>
      {role === "admin" ? <Link href="/admin">Admin page</Link> : <p>No admin page for this role.</p>}
      <form
        action={async () => {
          "use server";
          // Better Auth deletes the session row; the sessiond plugin returns
          // once no sessiond node would answer it any more.
          await auth().api.signOut({ headers: await headers() });
          redirect("/sign-in");
        }}
      >
        <button type="submit">Sign out</button>
      </form>
    </main>
  );
}
