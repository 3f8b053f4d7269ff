import { AuthError } from "next-auth";
import { redirect } from "next/navigation";
import { signIn } from "@/auth";

export default async function Login({ searchParams }: { searchParams: Promise<{ error?: string }> }) {
  const { error } = await searchParams;
  return (
    <main>
      <h1>Sign in</h1>
      {error ? <p>Not signed in ({error}).</p> : null}
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
            if (e instanceof AuthError) redirect(`/login?error=${e.type}`);
            throw e;
          }
        }}
      >
        <input name="email" type="email" placeholder="email" required />
        <input name="password" type="password" placeholder="password" required />
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
