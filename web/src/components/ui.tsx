import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { navigate } from "../lib/router";

type Toast = { id: number; text: string; kind: "error" | "info" };
const ToastContext = createContext<(text: string, kind?: Toast["kind"]) => void>(() => {});

/** Messages from the API, shown for a few seconds in a live region (read out by screen readers). */
export function Toasts({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const next = useRef(0);
  const notify = useCallback((text: string, kind: Toast["kind"] = "error") => {
    const id = ++next.current;
    setToasts((t) => [...t, { id, text, kind }]);
    setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), kind === "error" ? 8000 : 4000);
  }, []);
  return (
    <ToastContext.Provider value={notify}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast ${t.kind}`} data-testid="toast">
            <span>{t.text}</span>
            <button className="ghost" aria-label="Dismiss" onClick={() => setToasts((x) => x.filter((y) => y.id !== t.id))}>
              ×
            </button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

export const useNotify = () => useContext(ToastContext);

/** Runs an action, turning a failure into a toast with the API's message. */
export function useAction() {
  const notify = useNotify();
  const [busy, setBusy] = useState(false);
  const run = useCallback(
    async <T,>(action: () => Promise<T>): Promise<T | undefined> => {
      setBusy(true);
      try {
        return await action();
      } catch (error) {
        notify(error instanceof Error ? error.message : String(error));
        return undefined;
      } finally {
        setBusy(false);
      }
    },
    [notify],
  );
  return { busy, run };
}

/** Loads data for a page: `data` once loaded, `error` (the API's message) when it failed; `reload` refetches. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: Error) => live && setState({ error: error.message, loading: false }),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((n) => n + 1), set: (data: T) => setState({ data, loading: false }) };
}

/** A `useLoad`'s data once it is there; until then its failure (with a retry) or a loading line. */
export function Loaded<T>({ state, children }: { state: { data?: T; error?: string; reload: () => void }; children: (data: T) => ReactNode }) {
  if (state.error) return <Failed error={state.error} retry={state.reload} />;
  if (state.data === undefined) return <Loading />;
  return <>{children(state.data)}</>;
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="muted" role="status" aria-busy="true">
      <span className="spinner" aria-hidden="true" /> {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function Failed({ error, retry }: { error: string; retry?: () => void }) {
  return (
    <div className="failed" role="alert">
      <p>{error}</p>
      {retry && <button onClick={retry}>Try again</button>}
    </div>
  );
}

export function Badge({ status }: { status: string }) {
  return <span className={`badge s-${status}`}>{status}</span>;
}

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  return (
    <a
      href={to}
      className={className}
      onClick={(e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}

/**
 * A captioned table that scrolls sideways on a narrow screen instead of widening the page. The caption is for
 * screen readers (the page's heading already names the table for sighted users); `cells` gives one row's cells.
 */
export function DataTable<T>({
  caption,
  headers,
  rows,
  rowKey,
  cells,
}: {
  caption: string;
  headers: ReactNode[];
  rows: T[];
  rowKey: (row: T) => string | number;
  cells: (row: T) => ReactNode[];
}) {
  return (
    <div className="table-wrap">
      <table>
        <caption className="sr-only">{caption}</caption>
        <thead>
          <tr>
            {headers.map((h, i) => (
              <th key={i}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={rowKey(row)}>
              {cells(row).map((cell, i) => (
                <td key={i}>{cell}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
