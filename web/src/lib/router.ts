// A router of a few lines: paths are real URLs (the API serves the page at each of them, api/routes/console.py),
// pushState moves between them without a reload.
import { useEffect, useState } from "react";

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  history[replace ? "replaceState" : "pushState"](null, "", to);
  window.dispatchEvent(new Event("nexus:navigate"));
}

export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const update = () => setTick((n) => n + 1);
    window.addEventListener("popstate", update);
    window.addEventListener("nexus:navigate", update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener("nexus:navigate", update);
    };
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** `match("/media/:id", "/media/42")` → `{ id: "42" }`; null when the path is another page's. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/");
  const got = path.replace(/\/+$/, "").split("/");
  if (pattern === "/" ? path !== "/" : want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}
