// Sign-up and sign-in through Better Auth's server API (nextCookies() sets
// the session cookie from a server action).
import { APIError } from "better-auth/api";
import { headers } from "next/headers";
import { redirect } from "next/navigation";
import { auth } from "@/lib/auth";

function field(form: FormData, name: string): string {
  const v = form.get(name);
  return typeof v === "string" ? v : "";
}

/** Runs a Better Auth call; its refusal comes back as ?error=…, anything else is thrown. */
async function attempt(call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (e) {
    if (e instanceof APIError) redirect(`/sign-in?error=${encodeURIComponent(e.body?.code ?? e.status.toString())}`);
    throw e;
  }
  redirect("/");
}

export default async function SignIn({ searchParams }: { searchParams: Promise<{ error?: string }> }) {
  const { error } = await searchParams;
  return (
    <main>
      <h1>Sign in</h1>
      {error ? <p role="alert">Sign-in failed ({error}).</p> : null}
      <form
        action={async (form: FormData) => {
          "use server";
          await attempt(async () =>
            auth().api.signInEmail({
              body: { email: field(form, "email"), password: field(form, "password") },
              headers: await headers(),
            }),
          );
        }}
      >
        <input name="email" type="email" placeholder="email" required />
        <input name="password" type="password" placeholder="password" required />
        <button type="submit">Sign in</button>
      </form>
      <h2>New here?</h2>
      <form
        action={async (form: FormData) => {
          "use server";
          await attempt(async () =>
            auth().api.signUpEmail({
              body: { name: field(form, "name"), email: field(form, "email"), password: field(form, "password") },
              headers: await headers(),
            }),
          );
        }}
      >
        <input name="name" placeholder="name" required />
        <input name="email" type="email" placeholder="email" required />
        <input name="password" type="password" placeholder="password (8 characters or more)" required />
        <button type="submit">Sign up</button>
      </form>
    </main>
  );
}
