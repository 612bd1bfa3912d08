import type { Config } from "../App";
import { api, must } from "../api/client";
import { Badge, Empty, Loaded, useAction, useLoad, useNotify } from "../components/ui";
import { when } from "../lib/format";

const NAMES: Record<string, string> = { google: "Google", spotify: "Spotify" };

/** Connect and disconnect Google and Spotify; an integration that needs re-authorisation offers a reconnect. */
export function IntegrationsPage({ config }: { config: Config | null }) {
  const list = useLoad(() => must(api.GET("/api/integrations")), []);
  const { busy, run } = useAction();
  const notify = useNotify();
  const returned = new URLSearchParams(location.search);
  const disconnect = (id: string) =>
    run(async () => {
      const done = await must(api.DELETE("/api/integrations/{integration_id}", { params: { path: { integration_id: id } } }));
      notify(done.detail, "info"); // Spotify cannot revoke remotely: the detail says where the user does it
      list.reload();
    });
  // A browser navigation, not a fetch: the provider's consent page takes over, then sends the user back here.
  const connect = (provider: string) => location.assign(`/api/integrations/${provider}/connect?next=/integrations`);

  return (
    <section>
      <h1>Integrations</h1>
      {returned.get("error") && (
        <div className="failed" role="alert">
          {returned.get("error")}
        </div>
      )}
      <div className="row wrap">
        {(config?.integrations ?? []).map((p) => (
          <button key={p} className="primary" onClick={() => connect(p)}>
            Connect {NAMES[p] ?? p}
          </button>
        ))}
        {config && config.integrations.length === 0 && (
          <p className="muted">No provider is configured on this server (NEXUS_GOOGLE_CLIENT_ID, NEXUS_SPOTIFY_CLIENT_ID).</p>
        )}
      </div>
      <Loaded state={list}>
        {(data) =>
          data.length === 0 ? (
            <Empty>No account connected.</Empty>
          ) : (
            <ul className="cards" aria-label="Connected accounts">
              {data.map((i) => {
                const reconnect = i.status !== "active" || i.reauth_due;
                return (
                  <li key={i.id} className="card">
                    <div className="row wrap">
                      <strong className="grow">
                        {NAMES[i.provider] ?? i.provider} · {i.account_email ?? i.account_id}
                      </strong>
                      <Badge status={i.status} />
                    </div>
                    <p className="muted small">
                      Token refreshed {when(i.last_refreshed_at)} · expires {when(i.access_token_expires_at)}
                      {i.reauth_due_at && ` · consent ends ${when(i.reauth_due_at)}`}
                    </p>
                    {i.last_error && <p className="error small">{i.last_error}</p>}
                    <div className="row">
                      {reconnect && (
                        <button className="primary" onClick={() => connect(i.provider)}>
                          Reconnect
                        </button>
                      )}
                      {i.status !== "revoked" && (
                        <button className="danger" disabled={busy} onClick={() => disconnect(i.id)}>
                          Disconnect
                        </button>
                      )}
                    </div>
                  </li>
                );
              })}
            </ul>
          )
        }
      </Loaded>
    </section>
  );
}
