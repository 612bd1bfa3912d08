import { useState } from "react";
import type { Config } from "../App";
import { api, must, type Schemas } from "../api/client";
import { DataTable, Empty, Link, Loaded, useAction, useLoad, useNotify } from "../components/ui";
import { when } from "../lib/format";

/** Failed runs with their reasons, retry one or every match, links into the Temporal UI, re-embedding progress. */
export function OperatorPage({ config }: { config: Config | null }) {
  const [contains, setContains] = useState("");
  const jobs = useLoad(
    () => must(api.GET("/api/admin/jobs", { params: { query: { status: "failed", error_contains: contains || undefined, limit: 200 } } })),
    [contains],
  );
  const models = useLoad(() => must(api.GET("/api/admin/embeddings")), []);
  const schedules = useLoad(() => must(api.GET("/api/admin/schedules")), []);
  const { busy, run } = useAction();
  const notify = useNotify();

  const retryOne = (id: string) =>
    run(async () => {
      // Through the admin route: the user's own /api/jobs/{id}/retry is for the job's owner only.
      const result = await must(api.POST("/api/admin/jobs/retry", { body: { status: "failed", job_ids: [id] } }));
      if (!result.done.length) throw new Error(Object.values(result.skipped)[0] ?? "the run no longer matches");
      notify("Retrying from the step that failed", "info");
      jobs.reload();
    });
  const retryAll = () =>
    run(async () => {
      const result = await must(api.POST("/api/admin/jobs/retry", { body: { status: "failed", error_contains: contains || null } }));
      const skipped = Object.keys(result.skipped).length;
      notify(`Retried ${result.done.length} of ${result.matched.length}${skipped ? `; ${skipped} left alone` : ""}`, "info");
      jobs.reload();
    });
  const temporal = (job: Schemas["JobRow"]) =>
    config?.temporal_ui_url
      ? `${config.temporal_ui_url}/namespaces/${config.temporal_namespace ?? "default"}/workflows/media-${job.media_id}`
      : null;

  return (
    <section>
      <h1>Operator</h1>
      <p className="muted">
        Runs are inspected in the{" "}
        {config?.temporal_ui_url ? (
          <a href={config.temporal_ui_url} target="_blank" rel="noreferrer">
            Temporal UI
          </a>
        ) : (
          "Temporal UI"
        )}
        , where the schedules below can be paused or triggered too.
      </p>
      <h2>Failed runs</h2>
      <div className="row wrap">
        <label>
          Error contains{" "}
          <input value={contains} onChange={(e) => setContains(e.target.value)} placeholder="e.g. timeout" />
        </label>
        <button className="primary" onClick={retryAll} disabled={busy || !jobs.data?.length}>
          Retry all {jobs.data?.length ?? ""} matching
        </button>
      </div>
      <Loaded state={jobs}>
        {(data) =>
          data.length === 0 ? (
            <Empty>No failed runs.</Empty>
          ) : (
            <ul className="cards" aria-label="Failed runs">
              {data.map((j) => (
                <li key={j.id} className="card">
                  <div className="row wrap">
                    <Link to={`/jobs/${j.id}`} className="title grow">
                      {j.title || j.media_id}
                    </Link>
                    <span className="muted small">
                      failed in {j.failed_stage ?? "?"} · attempt {j.attempts} · {when(j.updated_at)}
                    </span>
                  </div>
                  <p className="error small">{j.error}</p>
                  <div className="row">
                    <button onClick={() => retryOne(j.id)} disabled={busy} aria-label={`Retry ${j.title || j.media_id}`}>
                      Retry
                    </button>
                    {temporal(j) && (
                      <a href={temporal(j)!} target="_blank" rel="noreferrer">
                        Open in Temporal
                      </a>
                    )}
                  </div>
                </li>
              ))}
            </ul>
          )
        }
      </Loaded>
      <h2>Schedules</h2>
      <Loaded state={schedules}>
        {(data) =>
          data.length === 0 ? (
            <Empty>No schedule yet: the workflows worker creates them when it starts.</Empty>
          ) : (
            <DataTable
              caption="Schedules"
              headers={["Schedule", "Every", "Next run", "Runs so far"]}
              rows={data}
              rowKey={(s) => s.id}
              cells={(s) => [
                <>
                  {s.workflow}
                  {s.paused && <span className="muted"> (paused)</span>}
                </>,
                s.every_hours >= 1 ? `${s.every_hours} h` : `${Math.round(s.every_hours * 60)} min`,
                when(s.next_runs[0]),
                s.runs_so_far,
              ]}
            />
          )
        }
      </Loaded>
      <h2>Embedding models</h2>
      <Loaded state={models}>
        {(data) =>
          <DataTable
            caption="Embedding models"
            headers={["Model", "Status", "Vectors", "Still to embed"]}
            rows={data.models}
            rowKey={(m) => m.id}
            cells={(m) => [
              <>
                {m.name} <span className="muted">({m.dims} d)</span>
              </>,
              m.status,
              m.vectors,
              m.status === "building" ? (
                <progress value={m.vectors} max={m.vectors + m.missing} aria-label={`${m.name} backfill`} />
              ) : (
                m.missing
              ),
            ]}
          />
        }
      </Loaded>
    </section>
  );
}
