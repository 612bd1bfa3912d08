import { useState } from "react";
import { api, must, type Schemas } from "../api/client";
import { Empty, Link, useAction } from "../components/ui";
import { clock } from "../lib/format";
import { navigate, useLocation } from "../lib/router";

type Mode = Schemas["SearchMode"];

/** Hybrid, semantic or keyword search; a hit opens the player at its second. */
export function SearchPage() {
  const { query: params } = useLocation();
  const [query, setQuery] = useState(params.get("q") ?? "");
  const [mode, setMode] = useState<Mode>((params.get("mode") as Mode) || "hybrid");
  const [found, setFound] = useState<Schemas["SearchResponse"] | null>(null);
  const { busy, run } = useAction();

  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    run(async () => {
      history.replaceState(null, "", `/search?q=${encodeURIComponent(query)}&mode=${mode}`);
      setFound(await must(api.POST("/api/search", { body: { query, mode, limit: 20 } })));
    });
  };

  return (
    <section>
      <h1>Search</h1>
      <form role="search" className="card" onSubmit={submit}>
        <label htmlFor="q">Search your recordings</label>
        <div className="row">
          <input id="q" className="grow" value={query} onChange={(e) => setQuery(e.target.value)} required maxLength={1000} />
          <button className="primary" disabled={busy}>
            Search
          </button>
        </div>
        <fieldset className="row">
          <legend>Mode</legend>
          {(["hybrid", "semantic", "keyword"] as Mode[]).map((m) => (
            <label key={m} className="inline">
              <input type="radio" name="mode" value={m} checked={mode === m} onChange={() => setMode(m)} /> {m}
            </label>
          ))}
        </fieldset>
      </form>
      {found &&
        (found.results.length === 0 ? (
          <Empty>Nothing matched “{found.query}”.</Empty>
        ) : (
          <ol className="results" aria-label="Results">
            {found.results.map((r, i) => (
              <li key={i} className="card">
                <button className="result" onClick={() => navigate(`/media/${r.media_id}?t=${Math.floor(r.start)}`)}>
                  <span className="title">{r.title || "Untitled"}</span>
                  <time>{clock(r.start)}</time>
                  {r.speaker && <span className="speaker">{r.speaker}</span>}
                  <span className="snippet">{r.snippet}</span>
                </button>
              </li>
            ))}
          </ol>
        ))}
      {!found && (
        <p className="muted">
          Hybrid mixes meaning and exact words; keyword finds rare names; semantic finds paraphrases. Results open{" "}
          <Link to="/library">the player</Link> at the second they were said.
        </p>
      )}
    </section>
  );
}
