/**
 * The errors of the client's calls and how an answer of sessiond becomes a
 * value or one of them: shared by `SessiondClient` and the Better Auth
 * module's own Node transport. `index.ts` re-exports the public part.
 */

/**
 * The error codes sessiond answers (`{"error": code, "message": text}`): the
 * `ErrorCode` list of its OpenAPI document, and `internal` (a fault of the
 * service itself, answered with a 500, which the document leaves out).
 */
export const API_ERROR_CODES = [
  "invalid_token",
  "session_revoked",
  "invalid_credentials",
  "forbidden",
  "not_found",
  "bad_request",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
  "method_not_allowed",
  "rate_limited",
  "unavailable",
  "locked",
  "internal",
] as const;

/** One of {@link API_ERROR_CODES}. */
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/**
 * Codes of failures without an API answer: no answer within the timeout,
 * no connection (after the retries), an answer that is not sessiond's JSON,
 * or a call cancelled through the caller's own `signal`.
 */
export type ClientErrorCode = "timeout" | "network_error" | "unexpected_response" | "aborted";

export type ErrorCode = ApiErrorCode | ClientErrorCode;

/**
 * Every failure of a client call. `code` is the API's `error` (or a
 * {@link ClientErrorCode}), `status` the HTTP status (0 when there was no
 * HTTP answer), `message` the API's `message`.
 */
export class SessiondError extends Error {
  override readonly name = "SessiondError";
  /** The API's `error` code, or one of {@link ClientErrorCode}. */
  readonly code: ErrorCode;
  /** The HTTP status, or 0 when sessiond did not answer. */
  readonly status: number;
  /**
   * Seconds until a `rate_limited` login may be tried again (the answer's
   * `Retry-After`); `undefined` for every other error.
   */
  readonly retryAfter: number | undefined;

  constructor(
    code: ErrorCode,
    status: number,
    message: string,
    options?: { cause?: unknown; retryAfter?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = status;
    this.retryAfter = options?.retryAfter;
  }

  /**
   * True when the token does not resolve and never will again
   * (`invalid_token`, `session_revoked`): the user is signed out.
   */
  get signedOut(): boolean {
    return this.code === "invalid_token" || this.code === "session_revoked";
  }

  /**
   * True when sessiond could not answer (it is down, slow or unreachable,
   * or its database is): the caller should fail closed without concluding
   * anything about the user.
   */
  get unavailable(): boolean {
    return (
      this.code === "unavailable" ||
      this.code === "locked" ||
      this.code === "timeout" ||
      this.code === "network_error" ||
      this.code === "unexpected_response" ||
      this.code === "internal"
    );
  }
}

/** `e` is a {@link SessiondError}, of the given code when one is given. */
export function isSessiondError(e: unknown, code?: ErrorCode): e is SessiondError {
  return e instanceof SessiondError && (code === undefined || e.code === code);
}

/** The `code`s of an error and of its causes, outermost first. */
export function errorCodes(e: unknown): string[] {
  const codes: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; depth < 5 && cur !== null && typeof cur === "object"; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    cur = (cur as { cause?: unknown }).cause;
  }
  return codes;
}
/** A network error in a few words: its innermost code, else its message. */
export function describe(e: unknown): string {
  const codes = errorCodes(e);
  if (codes.length > 0) return codes[codes.length - 1] ?? "unknown";
  return e instanceof Error ? e.message : "unknown error";
}

const API_CODES: ReadonlySet<string> = new Set<string>(API_ERROR_CODES);

/** `Retry-After` in seconds (it is either seconds or an HTTP date). */
function retryAfterSeconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The value of an answer: the JSON object of a 2xx (nothing when `empty`),
 * else the {@link SessiondError} its body names (thrown).
 */
export function interpret(status: number, text: string, empty: boolean, retryAfter: string | null): unknown {
  if (status >= 200 && status < 300) {
    if (empty) return undefined;
    const value = parse(text);
    if (value === null || typeof value !== "object") {
      throw new SessiondError("unexpected_response", status, `sessiond answered ${status} without a JSON object`);
    }
    return value;
  }
  const value = parse(text);
  if (value !== null && typeof value === "object") {
    const { error, message } = value as { error?: unknown; message?: unknown };
    if (typeof error === "string") {
      const said = typeof message === "string" && message !== "" ? message : error;
      if (error === "rate_limited") {
        const seconds = retryAfterSeconds(retryAfter);
        throw new SessiondError("rate_limited", status, said, seconds === undefined ? {} : { retryAfter: seconds });
      }
      if (API_CODES.has(error)) throw new SessiondError(error as ApiErrorCode, status, said);
      throw new SessiondError("unexpected_response", status, `sessiond answered ${status} ${error}: ${said}`);
    }
  }
  throw new SessiondError(
    "unexpected_response",
    status,
    `sessiond answered HTTP ${status} without an API error body`,
  );
}
