import { cleanup, render, screen, waitFor, fireEvent } from "@testing-library/react";
import { afterEach, expect, it, vi } from "vitest";
import { Toasts } from "../components/ui";
import { SignInPage } from "./SignIn";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function answer(body: unknown, status = 200) {
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } }));
}

it("offers Google only when the server has it configured", async () => {
  vi.stubGlobal("fetch", vi.fn(() => answer({ google: true, api_key: true })));
  render(<SignInPage onSignedIn={() => {}} />);
  expect(await screen.findByText("Sign in with Google")).toBeTruthy();
});

it("shows the API's reason when the key is refused, and signs in with a good one", async () => {
  const fetch = vi.fn((url: string) => {
    if (url === "/auth/options") return answer({ google: false, api_key: true });
    return answer({ detail: "invalid or revoked API key" }, 401);
  });
  vi.stubGlobal("fetch", fetch);
  const signedIn = vi.fn();
  render(
    <Toasts>
      <SignInPage onSignedIn={signedIn} />
    </Toasts>,
  );
  expect(screen.queryByText("Sign in with Google")).toBeNull();
  fireEvent.change(screen.getByLabelText("API key"), { target: { value: "nx_wrong" } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in with API key" }));
  expect(await screen.findByText("invalid or revoked API key")).toBeTruthy();
  expect(signedIn).not.toHaveBeenCalled();
  const [, init] = fetch.mock.calls.find(([u]) => u === "/auth/session") as unknown as [string, RequestInit];
  expect(new Headers(init.headers).get("Authorization")).toBe("Bearer nx_wrong");

  fetch.mockImplementation(() => answer({ user: {}, csrf_token: "t" }));
  fireEvent.change(screen.getByLabelText("API key"), { target: { value: "nx_right" } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in with API key" }));
  await waitFor(() => expect(signedIn).toHaveBeenCalled());
});
