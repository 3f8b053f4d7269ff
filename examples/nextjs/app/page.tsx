// A server component: auth() runs the sessiond callbacks, so the role shown
// here is the user's role as of this request, not as of sign-in.
import Link from "next/link";
import { hasRole } from "@sessiond/client/authjs";
import { auth, signOut } from "@/auth";

export const dynamic = "force-dynamic";

export default async function Home() {
  const session = await auth();
  // `user` is null whenever sessiond did not resolve the session for this
  // request (session.error says why): never treat that as signed in.
  const user = session?.user;
  if (!user) {
    return (
      <p>
        Not signed in{session?.error ? ` (${session.error})` : ""}. <Link href="/login">Sign in</Link>
      </p>
    );
  }
  return (
    <main>
      <h1>Hello, {user.email}</h1>
      <p>
        role <b>{user.role}</b>, status <b>{user.status}</b> (user {user.id}), read from sessiond for this request.
      </p>
      {hasRole(session, "admin") ? <Link href="/admin">Admin page</Link> : <p>No admin page for this role.</p>}
      <form
        action={async () => {
          "use server";
          await signOut({ redirectTo: "/login" });
        }}
      >
        <button type="submit">Sign out</button>
      </form>
    </main>
  );
}
