// The typed client: `schema.d.ts` is generated from the API's OpenAPI schema (`make web-client`), and a test
// fails when it is stale, so a changed route breaks the build here instead of the page in a browser.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

export function csrfToken(): string | null {
  const found = document.cookie.match(/(?:^|;\s*)nexus_csrf=([^;]+)/);
  return found ? decodeURIComponent(found[1]) : null;
}

export function withCsrf(headers: Headers, method: string): void {
  const token = csrfToken();
  if (token && !["GET", "HEAD", "OPTIONS"].includes(method.toUpperCase())) headers.set("X-CSRF-Token", token);
}

const session: Middleware = {
  onRequest({ request }) {
    withCsrf(request.headers, request.method);
    return request;
  },
  onResponse({ response, request }) {
    if (response.status === 401 && !request.url.includes("/auth/")) window.dispatchEvent(new Event("nexus:signed-out"));
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: location.origin, credentials: "same-origin" });
api.use(session);

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The API's own words for a failure: its `detail`, or each validation error's field and message. */
export function explain(body: unknown, status: number): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail))
    return detail
      .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).slice(1).join(".") || "request"}: ${d.msg}`)
      .join("; ");
  return `the server answered ${status}`;
}

/** The data of a successful call; an ApiError carrying the API's message otherwise. */
export async function must<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw new ApiError(response.status, explain(error, response.status));
  return data as T;
}
