import { useState } from "react";
import { api, must, type Schemas } from "../api/client";
import { DataTable, Loaded, useAction, useLoad } from "../components/ui";
import { when } from "../lib/format";

/** API keys (a new key is shown once; revoke) and browser sessions (revoke). */
export function SettingsPage() {
  const keys = useLoad(() => must(api.GET("/api/apikeys")), []);
  const sessions = useLoad(() => must(api.GET("/api/sessions")), []);
  const [name, setName] = useState("");
  const [created, setCreated] = useState<Schemas["ApiKeyCreated"] | null>(null);
  const { busy, run } = useAction();

  const create = (e: React.FormEvent) => {
    e.preventDefault();
    run(async () => {
      setCreated(await must(api.POST("/api/apikeys", { body: { name: name.trim() || "default" } })));
      setName("");
      keys.reload();
    });
  };
  const revokeKey = (id: string) =>
    run(async () => {
      await must(api.DELETE("/api/apikeys/{key_id}", { params: { path: { key_id: id } } }));
      keys.reload();
    });
  const revokeSession = (id: string) =>
    run(async () => {
      await must(api.DELETE("/api/sessions/{session_id}", { params: { path: { session_id: id } } }));
      sessions.reload();
    });

  return (
    <section>
      <h1>Settings</h1>
      <h2>API keys</h2>
      <form className="card row wrap" onSubmit={create}>
        <label htmlFor="key-name">Name</label>
        <input id="key-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="laptop script" maxLength={100} />
        <button className="primary" disabled={busy}>
          Create key
        </button>
      </form>
      {created && (
        <div className="card notice" role="alert">
          <p>
            <strong>Copy the new key now:</strong> it is shown only once.
          </p>
          <code className="secret" data-testid="new-key">
            {created.token}
          </code>
          <div className="row">
            <button onClick={() => navigator.clipboard?.writeText(created.token)}>Copy</button>
            <button className="ghost" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      <Loaded state={keys}>
        {(data) =>
          <DataTable
            caption="API keys"
            headers={["Name", "Key", "Created", "Last used", <span className="sr-only">Revoke</span>]}
            rows={data}
            rowKey={(k) => k.id}
            cells={(k) => [
              k.name,
              <code>{k.prefix}…</code>,
              when(k.created_at),
              when(k.last_used_at),
              k.revoked_at ? (
                <span className="muted">revoked</span>
              ) : (
                <button className="danger" onClick={() => revokeKey(k.id)} aria-label={`Revoke key ${k.name}`}>
                  Revoke
                </button>
              ),
            ]}
          />
        }
      </Loaded>
      <h2>Sessions</h2>
      <Loaded state={sessions}>
        {(data) =>
          (
            <ul className="cards">
              {data.map((s) => (
                <li key={s.id} className="card row wrap">
                  <div className="grow">
                    <div>{s.user_agent ?? "unknown browser"}</div>
                    <div className="muted small">
                      {s.ip ?? ""} · last seen {when(s.last_seen_at)} {s.current && "· this browser"}
                    </div>
                  </div>
                  {!s.current && (
                    <button
                      className="danger"
                      onClick={() => revokeSession(s.id)}
                      aria-label={`Revoke the session of ${s.user_agent ?? "an unknown browser"}`}
                    >
                      Revoke
                    </button>
                  )}
                </li>
              ))}
            </ul>
          )
        }
      </Loaded>
    </section>
  );
}
