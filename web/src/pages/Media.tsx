import { useEffect, useRef, useState } from "react";
import { api, must } from "../api/client";
import { Badge, Failed, Link, Loading, useAction, useLoad } from "../components/ui";
import { clock, TERMINAL } from "../lib/format";
import { navigate, useLocation } from "../lib/router";

const VIDEO = /\.(mp4|m4v|mov|webm|mkv|ogv)$/i;

/** The player beside the transcript: the segment being heard highlights, a click on a segment seeks there. */
export function MediaPage({ id }: { id: string }) {
  const { query } = useLocation();
  const start = Number(query.get("t") ?? "0") || 0;
  const media = useLoad(() => must(api.GET("/api/media/{media_id}", { params: { path: { media_id: id } } })), [id]);
  const player = useRef<HTMLVideoElement>(null);
  const [now, setNow] = useState(start);
  const [useOriginal, setUseOriginal] = useState(false);
  const { busy, run } = useAction();

  const item = media.data;
  useEffect(() => {
    if (item && !TERMINAL.has(item.status)) {
      const timer = setTimeout(media.reload, 2000);
      return () => clearTimeout(timer);
    }
  }, [item]); // eslint-disable-line react-hooks/exhaustive-deps
  // Items fetched before `has_video` was recorded: guessed from the file name.
  const hasVideo = Boolean(item && (item.has_video ?? VIDEO.test(item.original_filename ?? "")));
  useEffect(() => {
    setUseOriginal(hasVideo);
  }, [hasVideo]);

  // Arriving from a search hit or a citation (?t=): start there.
  useEffect(() => {
    const el = player.current;
    if (!el || !start) return;
    const seek = () => {
      el.currentTime = start;
    };
    if (el.readyState >= 1) seek();
    else el.addEventListener("loadedmetadata", seek, { once: true });
    return () => el.removeEventListener("loadedmetadata", seek);
  }, [start, item?.id, useOriginal]);

  if (media.error) return <Failed error={media.error} retry={media.reload} />;
  if (!item) return <Loading />;

  const current = item.segments.findIndex((s) => now >= s.start && now < s.end);
  const seekTo = (t: number) => {
    const el = player.current;
    if (!el) return;
    el.currentTime = t;
    el.play().catch(() => {});
  };
  const remove = () =>
    run(async () => {
      if (!confirm("Delete this item, its transcript and its files?")) return;
      await must(api.DELETE("/api/media/{media_id}", { params: { path: { media_id: id } } }));
      navigate("/library");
    });
  const ready = Boolean(item.segments.length) || item.status === "completed";
  const src = `/api/media/${id}/${useOriginal ? "original" : "audio"}`;

  return (
    <section>
      <div className="row wrap">
        <h1 className="grow">{item.title || item.source_url || "Untitled"}</h1>
        <Badge status={item.status} />
      </div>
      <p className="muted small">
        {item.source_type}
        {item.duration_s ? ` · ${clock(item.duration_s)}` : ""}
        {item.language ? ` · ${item.language}` : ""}
        {item.job_id && (
          <>
            {" "}
            · <Link to={`/jobs/${item.job_id}`}>processing details</Link>
          </>
        )}
      </p>
      {item.error && (
        <div className="failed" role="alert">
          {item.error}
        </div>
      )}
      <div className="media-layout">
        <div className="player">
          {ready ? (
            <video
              ref={player}
              key={src}
              src={src}
              controls
              preload="metadata"
              onTimeUpdate={(e) => setNow(e.currentTarget.currentTime)}
              data-testid="player"
            >
              <track kind="captions" src={`/api/media/${id}/transcript.vtt`} label="Transcript" default />
            </video>
          ) : (
            <p className="muted">The player appears once the audio is converted.</p>
          )}
          {item.summary && (
            <>
              <h2>Summary</h2>
              <p>{item.summary}</p>
            </>
          )}
          {item.tags.length > 0 && (
            <div className="tags" aria-label="Tags">
              {item.tags.map((t) => (
                <Link key={t} to={`/library?tag=${encodeURIComponent(t)}`} className="chip">
                  {t}
                </Link>
              ))}
            </div>
          )}
          {(item.duplicate_of || item.duplicates.length > 0) && (
            <>
              <h2>Duplicates</h2>
              <ul aria-label="Duplicates">
                {item.duplicate_of && (
                  <li>
                    A near-duplicate of <Link to={`/media/${item.duplicate_of}`}>an earlier item</Link>
                  </li>
                )}
                {item.duplicates.map((d) => (
                  <li key={d.id}>
                    <Link to={`/media/${d.id}`}>{d.title || "Untitled"}</Link> repeats this one
                  </li>
                ))}
              </ul>
            </>
          )}
          <h2>Export</h2>
          <div className="row wrap">
            {(["srt", "vtt", "txt", "json"] as const).map((f) => (
              <a key={f} className="button" href={`/api/media/${id}/transcript.${f}`} download>
                {f.toUpperCase()}
              </a>
            ))}
          </div>
          <div className="row danger-zone">
            {hasVideo && (
              <button onClick={() => setUseOriginal((v) => !v)}>{useOriginal ? "Audio only" : "Show video"}</button>
            )}
            <button className="danger" onClick={remove} disabled={busy}>
              Delete
            </button>
          </div>
        </div>
        <div className="transcript" aria-label="Transcript">
          <h2>Transcript</h2>
          {item.segments.length === 0 && <p className="muted">No transcript yet.</p>}
          <ol>
            {item.segments.map((s, i) => (
              <li key={i} className={i === current ? "current" : ""} aria-current={i === current ? "true" : undefined}>
                <button className="segment" onClick={() => seekTo(s.start)} data-start={s.start}>
                  <time>{clock(s.start)}</time>
                  {s.speaker && <span className="speaker">{s.speaker}</span>}
                  <span className="text">{s.text}</span>
                  {s.translation && <span className="translation">{s.translation}</span>}
                </button>
              </li>
            ))}
          </ol>
        </div>
      </div>
    </section>
  );
}
