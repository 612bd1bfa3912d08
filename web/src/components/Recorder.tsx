import { useEffect, useRef, useState } from "react";
import { clock } from "../lib/format";
import { navigate } from "../lib/router";
import { upload } from "../lib/upload";
import { useNotify } from "./ui";

/** Record from the microphone (MediaRecorder) with a level meter; stop uploads it as `source=mic`. */
export function Recorder() {
  const [state, setState] = useState<"idle" | "recording" | "uploading">("idle");
  const [level, setLevel] = useState(0);
  const [elapsed, setElapsed] = useState(0);
  const recorder = useRef<MediaRecorder | null>(null);
  const cleanup = useRef<() => void>(() => {});
  const notify = useNotify();

  useEffect(() => () => cleanup.current(), []);

  const start = async () => {
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      notify(`The microphone is not available: ${(error as Error).message}`);
      return;
    }
    const audio = new AudioContext();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 512;
    audio.createMediaStreamSource(stream).connect(analyser);
    const samples = new Uint8Array(analyser.fftSize);
    const began = performance.now();
    let frame = 0;
    const meter = () => {
      analyser.getByteTimeDomainData(samples);
      let peak = 0;
      for (const s of samples) peak = Math.max(peak, Math.abs(s - 128) / 128);
      setLevel(peak);
      setElapsed((performance.now() - began) / 1000);
      frame = requestAnimationFrame(meter);
    };
    meter();
    const chunks: Blob[] = [];
    const rec = new MediaRecorder(stream);
    rec.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    rec.onstop = async () => {
      cleanup.current();
      const type = rec.mimeType || "audio/webm";
      const blob = new Blob(chunks, { type });
      setState("uploading");
      try {
        const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
        const title = `Recording ${new Date().toLocaleString()}`;
        const started = await upload(blob, `recording.${ext}`, { source: "mic", title }, () => {});
        navigate(`/jobs/${started.job_id}`);
      } catch (error) {
        notify((error as Error).message);
      } finally {
        setState("idle");
      }
    };
    cleanup.current = () => {
      cancelAnimationFrame(frame);
      stream.getTracks().forEach((t) => t.stop());
      audio.close().catch(() => {});
      setLevel(0);
    };
    recorder.current = rec;
    rec.start(1000);
    setState("recording");
  };

  return (
    <div className="card row recorder">
      <div className="grow">
        <strong>Record</strong>
        <div className="meter" role="meter" aria-label="Microphone level" aria-valuenow={Math.round(level * 100)} aria-valuemin={0} aria-valuemax={100}>
          <div style={{ width: `${Math.min(100, level * 140)}%` }} />
        </div>
      </div>
      {state === "recording" && <span className="muted" aria-live="off">{clock(elapsed)}</span>}
      {state === "idle" && (
        <button onClick={start} className="primary">
          ● Record
        </button>
      )}
      {state === "recording" && <button onClick={() => recorder.current?.stop()}>■ Stop and upload</button>}
      {state === "uploading" && <span className="muted">Uploading…</span>}
    </div>
  );
}
