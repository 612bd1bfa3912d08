import { useEffect, useState } from "react";
import { api, must, type Schemas } from "../api/client";
import { Badge, Empty, Link, Loaded, useAction, useLoad, useNotify } from "../components/ui";
import { Recorder } from "../components/Recorder";
import { clock, TERMINAL } from "../lib/format";
import { navigate, useLocation } from "../lib/router";
import { upload } from "../lib/upload";

type Status = Schemas["MediaStatus"];
type Source = Schemas["SourceType"];
const STATUSES: Status[] = [
  "pending", "extracting", "fingerprinting", "transcribing", "enriching", "embedding",
  "completed", "duplicate", "failed", "cancelled",
];
const SOURCES: Source[] = ["url", "file", "mic", "google_drive"];

export function LibraryPage() {
  const { query } = useLocation();
  const [filters, setFilters] = useState({
    status: query.get("status") ?? "",
    tag: query.get("tag") ?? "",
    source_type: query.get("source") ?? "",
    q: query.get("q") ?? "",
  });
  const list = useLoad(
    () =>
      must(
        api.GET("/api/media", {
          params: {
            query: {
              status: (filters.status || undefined) as Status | undefined,
              tag: filters.tag || undefined,
              source_type: (filters.source_type || undefined) as Source | undefined,
              q: filters.q || undefined,
              limit: 100,
            },
          },
        }),
      ),
    [filters.status, filters.tag, filters.source_type, filters.q],
  );

  // Live statuses: while anything is still moving, look again every two seconds.
  const moving = list.data?.items.some((m) => !TERMINAL.has(m.status));
  useEffect(() => {
    if (!moving) return;
    const timer = setInterval(list.reload, 2000);
    return () => clearInterval(timer);
  }, [moving]); // eslint-disable-line react-hooks/exhaustive-deps

  const set = (k: keyof typeof filters) => (e: { target: { value: string } }) =>
    setFilters((f) => ({ ...f, [k]: e.target.value }));

  return (
    <section>
      <h1>Library</h1>
      <div className="grid2">
        <AddByUrl />
        <DropUpload />
      </div>
      <Recorder />
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select value={filters.status} onChange={set("status")}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Source
          <select value={filters.source_type} onChange={set("source_type")}>
            <option value="">any</option>
            {SOURCES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Tag
          <input value={filters.tag} onChange={set("tag")} placeholder="e.g. interview" />
        </label>
        <label>
          Title
          <input value={filters.q} onChange={set("q")} placeholder="contains…" />
        </label>
      </form>
      <Loaded state={list}>
        {(data) =>
          data.items.length === 0 ? (
            <Empty>Nothing here yet. Add a link, drop a file or record something above.</Empty>
          ) : (
            <ul className="media-list" aria-label="Media">
              {data.items.map((m) => (
                <li key={m.id} className="card row">
                  <div className="grow">
                    <Link to={`/media/${m.id}`} className="title">
                      {m.title || m.source_url || "Untitled"}
                    </Link>
                    <div className="muted small">
                      {m.source_type} · {m.duration_s ? clock(m.duration_s) : "—"} · {new Date(m.created_at).toLocaleDateString()}
                      {m.duplicate_of && (
                        <>
                          {" "}
                          · <Link to={`/media/${m.duplicate_of}`}>duplicate</Link>
                        </>
                      )}
                    </div>
                    {m.tags.length > 0 && (
                      <div className="tags">
                        {m.tags.map((t) => (
                          <button key={t} className="chip" onClick={() => setFilters((f) => ({ ...f, tag: t }))}>
                            {t}
                          </button>
                        ))}
                      </div>
                    )}
                    {m.error && <p className="error small">{m.error}</p>}
                  </div>
                  <Badge status={m.status} />
                </li>
              ))}
            </ul>
          )
        }
      </Loaded>
    </section>
  );
}

function AddByUrl() {
  const [url, setUrl] = useState("");
  const { busy, run } = useAction();
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    run(async () => {
      const started = await must(api.POST("/api/media/process", { body: { source: "url", url: url.trim() } }));
      navigate(`/jobs/${started.job_id}`);
    });
  };
  return (
    <form className="card" onSubmit={submit}>
      <label htmlFor="add-url">Add by link</label>
      <div className="row">
        <input
          id="add-url"
          type="url"
          required
          placeholder="https://…"
          value={url}
          onChange={(e) => setUrl(e.target.value)}
          className="grow"
        />
        <button className="primary" disabled={busy}>
          Add
        </button>
      </div>
    </form>
  );
}

function DropUpload() {
  const [over, setOver] = useState(false);
  const [progress, setProgress] = useState<number | null>(null);
  const notify = useNotify();
  const send = async (files: FileList | null) => {
    const file = files?.[0];
    if (!file) return;
    setProgress(0);
    try {
      const started = await upload(file, file.name, { source: "file" }, setProgress);
      navigate(`/jobs/${started.job_id}`);
    } catch (error) {
      notify((error as Error).message);
    } finally {
      setProgress(null);
    }
  };
  return (
    <div
      className={`card drop ${over ? "over" : ""}`}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        send(e.dataTransfer.files);
      }}
    >
      <label htmlFor="upload-file">Upload audio or video</label>
      <p className="muted small">Drop a file here, or choose one.</p>
      <input id="upload-file" type="file" accept="audio/*,video/*" onChange={(e) => send(e.target.files)} />
      {progress !== null && (
        <progress aria-label="Upload progress" value={Math.round(progress * 100)} max={100}>
          {Math.round(progress * 100)}%
        </progress>
      )}
    </div>
  );
}
