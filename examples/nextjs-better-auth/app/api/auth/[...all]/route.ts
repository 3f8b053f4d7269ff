// Better Auth's own routes (sign-up, sign-in, sign-out, the admin plugin's).
import { auth } from "@/lib/auth";

export const GET = (request: Request) => auth().handler(request);
export const POST = (request: Request) => auth().handler(request);
