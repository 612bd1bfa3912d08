import { useEffect, useState } from "react";
import { explain } from "../api/client";
import { useAction } from "../components/ui";

/** Sign in with Google when it is configured, or with an API key (the embedded default), exchanged for a session. */
export function SignInPage({ onSignedIn }: { onSignedIn: () => void }) {
  const [google, setGoogle] = useState(false);
  const [key, setKey] = useState("");
  const { busy, run } = useAction();
  const next = new URLSearchParams(location.search).get("next") ?? "/library";

  useEffect(() => {
    fetch("/auth/options")
      .then((r) => r.json())
      .then((o: { google: boolean }) => setGoogle(o.google))
      .catch(() => setGoogle(false));
  }, []);

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    run(async () => {
      // The key travels once, in a header; from then on the browser holds only an HttpOnly session cookie.
      const response = await fetch("/auth/session", { method: "POST", headers: { Authorization: `Bearer ${key.trim()}` } });
      if (!response.ok) throw new Error(explain(await response.json().catch(() => null), response.status));
      setKey("");
      history.replaceState(null, "", next.startsWith("/") && !next.startsWith("//") ? next : "/library");
      onSignedIn();
    });
  };

  return (
    <main id="main" className="signin">
      <h1>Nexus</h1>
      <p className="muted">Your recordings, transcripts and conversations, on your own machine.</p>
      {google && (
        <a className="button primary wide" href={`/auth/google/start?next=${encodeURIComponent(next)}`}>
          Sign in with Google
        </a>
      )}
      <form onSubmit={submit} className="card">
        <label htmlFor="apikey">API key</label>
        <input
          id="apikey"
          type="password"
          autoComplete="current-password"
          placeholder="nx_…"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          required
        />
        <p className="hint">
          <code>make up</code> prints one and writes it to <code>var/dev-api-key</code>; <code>nexus apikey create</code> makes
          another.
        </p>
        <button className="primary" disabled={busy || !key.trim()}>
          {busy ? "Signing in…" : "Sign in with API key"}
        </button>
      </form>
    </main>
  );
}
