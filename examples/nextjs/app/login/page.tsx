import { AuthError, CredentialsSignin } from "next-auth";
import { redirect } from "next/navigation";
import { helper, signIn } from "@/auth";

/** What each sign-in failure tells the user (`?error=…&code=…`, as Auth.js redirects). */
function explain(error: string | undefined, code: string | undefined, retryAfter: string | undefined): string | null {
  if (!error) return null;
  if (error === "Verification") return "That sign-in link has expired or was already used: ask for a new one.";
  if (error !== "CredentialsSignin") return `Sign-in failed (${error}).`;
  if (code === "rate_limited") {
    return `Too many failed sign-ins: try again ${retryAfter ? `in ${retryAfter} s` : "later"}.`;
  }
  if (code === "sessiond_unavailable") return "The sign-in service is unavailable: try again in a moment.";
  return "Wrong email or password.";
}

export default async function Login({
  searchParams,
}: {
  searchParams: Promise<{ error?: string; code?: string; retryAfter?: string }>;
}) {
  const { error, code, retryAfter } = await searchParams;
  const message = explain(error, code, retryAfter);
  return (
    <main>
      <h1>Sign in</h1>
      {message ? <p role="alert">{message}</p> : null}
      <form
        action={async (form: FormData) => {
          "use server";
          try {
            await signIn("credentials", {
              email: form.get("email"),
              password: form.get("password"),
              redirectTo: "/",
            });
          } catch (e) {
            // next-auth's signIn() rethrows authorize()'s error as it is.
            if (e instanceof helper.errors.RateLimited && e.retryAfter !== undefined) {
              redirect(`/login?error=CredentialsSignin&code=${e.code}&retryAfter=${e.retryAfter}`);
            }
            if (e instanceof CredentialsSignin) redirect(`/login?error=CredentialsSignin&code=${e.code}`);
            if (e instanceof AuthError) redirect(`/login?error=${e.type}`);
            throw e;
          }
        }}
      >
        <input name="email" type="email" placeholder="email" required />
        <input name="password" type="password" placeholder="password" required />
        <button type="submit">Sign in</button>
      </form>
      <h2>Or get a sign-in link by email</h2>
      <form
        action={async (form: FormData) => {
          "use server";
          // Auth.js emails the link, then shows /api/auth/verify-request.
          await signIn("nodemailer", { email: form.get("email"), redirectTo: "/" });
        }}
      >
        <input name="email" type="email" placeholder="email" required />
        <button type="submit">Email me a link</button>
      </form>
    </main>
  );
}
