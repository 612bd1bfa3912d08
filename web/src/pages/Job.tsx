import { useEffect, useState } from "react";
import { api, must } from "../api/client";
import { Badge, Failed, Link, Loading, useAction, useLoad } from "../components/ui";
import { TERMINAL } from "../lib/format";

/** One event of the job's SSE stream (api/routes/jobs.py EventOut: a stream's items are not in the schema). */
interface Event {
  seq: number;
  stage: string;
  progress: number;
  terminal: boolean;
  message: string | null;
  at: string;
}
const STAGES = ["pending", "extracting", "fingerprinting", "transcribing", "enriching", "embedding", "completed"];

/** A run's live progress from the job's event stream (SSE), its failure reason, retry and cancel. */
export function JobPage({ id }: { id: string }) {
  const job = useLoad(() => must(api.GET("/api/jobs/{job_id}", { params: { path: { job_id: id } } })), [id]);
  const [events, setEvents] = useState<Event[]>([]);
  const [generation, setGeneration] = useState(0);
  const { busy, run } = useAction();

  useEffect(() => {
    setEvents([]);
    const source = new EventSource(`/api/jobs/${id}/events`);
    const seen = new Set<number>();
    const onEvent = (e: MessageEvent) => {
      const event = JSON.parse(e.data) as Event;
      if (seen.has(event.seq)) return;
      seen.add(event.seq);
      setEvents((list) => [...list, event]);
      if (event.terminal) {
        source.close();
        job.reload();
      }
    };
    for (const stage of [...STAGES, "duplicate", "failed", "cancelled", "message"]) source.addEventListener(stage, onEvent);
    return () => source.close();
  }, [id, generation]); // eslint-disable-line react-hooks/exhaustive-deps

  if (job.error) return <Failed error={job.error} retry={job.reload} />;
  if (!job.data) return <Loading />;
  const last = events[events.length - 1];
  const stage = last?.stage ?? job.data.stage;
  const progress = last?.progress ?? job.data.progress;
  const finished = TERMINAL.has(stage);
  const failure = [...events].reverse().find((e) => e.stage === "failed")?.message ?? job.data.error;

  const retry = () =>
    run(async () => {
      await must(api.POST("/api/jobs/{job_id}/retry", { params: { path: { job_id: id } } }));
      setGeneration((g) => g + 1);
      job.reload();
    });
  const cancel = () =>
    run(async () => {
      await must(api.POST("/api/jobs/{job_id}/cancel", { params: { path: { job_id: id } } }));
    });

  return (
    <section>
      <h1>
        Job <Badge status={stage} />
      </h1>
      <p>
        <Link to={`/media/${job.data.media_id}`}>Open the media item</Link>
      </p>
      <ol className="stages" aria-label="Stages">
        {STAGES.map((s) => {
          const reached = events.some((e) => e.stage === s) || STAGES.indexOf(s) < STAGES.indexOf(stage);
          const current = s === stage;
          return (
            <li key={s} className={current ? "current" : reached ? "done" : ""} aria-current={current ? "step" : undefined}>
              {s}
            </li>
          );
        })}
      </ol>
      <progress aria-label="Progress" value={progress} max={100} data-testid="job-progress">
        {progress}%
      </progress>
      <p className="muted" data-testid="job-stage">
        {stage} · {progress}%{last?.message ? ` · ${last.message}` : ""}
      </p>
      {stage === "failed" && failure && (
        <div className="failed" role="alert">
          <strong>Why it failed:</strong> {failure}
        </div>
      )}
      <div className="row">
        {(stage === "failed" || stage === "cancelled") && (
          <button className="primary" onClick={retry} disabled={busy}>
            Retry
          </button>
        )}
        {!finished && (
          <button onClick={cancel} disabled={busy}>
            Cancel
          </button>
        )}
      </div>
      <h2>Events</h2>
      <ul className="events">
        {events.map((e) => (
          <li key={e.seq}>
            <time className="muted">{new Date(e.at).toLocaleTimeString()}</time> {e.stage} {e.progress}%{" "}
            {e.message && <span className="muted">— {e.message}</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}
