import { useCallback, useEffect, useRef, useState } from "react";
import { api, must, type Schemas } from "./api/client";
import { Link, Loading, Toasts, useAction } from "./components/ui";
import { match, navigate, useLocation } from "./lib/router";
import { ChatPage } from "./pages/Chat";
import { IntegrationsPage } from "./pages/Integrations";
import { JobPage } from "./pages/Job";
import { LibraryPage } from "./pages/Library";
import { MediaPage } from "./pages/Media";
import { OperatorPage } from "./pages/Operator";
import { SearchPage } from "./pages/Search";
import { SettingsPage } from "./pages/Settings";
import { SignInPage } from "./pages/SignIn";

export type Me = Schemas["Me"];
export type Config = Schemas["ConsoleConfig"];

const NAV = [
  ["/library", "Library"],
  ["/search", "Search"],
  ["/chat", "Chat"],
  ["/integrations", "Integrations"],
  ["/settings", "Settings"],
] as const;

export function App() {
  return (
    <Toasts>
      <Shell />
    </Toasts>
  );
}

function Shell() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [config, setConfig] = useState<Config | null>(null);
  const { path } = useLocation();
  const { run } = useAction();

  const load = useCallback(async () => {
    const { data, response } = await api.GET("/auth/me");
    // A page signed in only by a key in a header is no session: the console always works with a cookie.
    if (!response.ok || !data || data.auth !== "session") return setMe(null);
    setMe(data);
    setConfig(await must(api.GET("/api/config")).catch(() => null));
  }, []);

  useEffect(() => {
    load();
    const out = () => setMe(null);
    window.addEventListener("nexus:signed-out", out);
    return () => window.removeEventListener("nexus:signed-out", out);
  }, [load]);

  useEffect(() => {
    if (me === null && path !== "/signin") navigate(`/signin?next=${encodeURIComponent(location.pathname)}`, true);
    if (me && (path === "/signin" || path === "/")) navigate("/library", true);
  }, [me, path]);

  useEffect(() => {
    const name = NAV.find(([p]) => path.startsWith(p))?.[1] ?? (path.startsWith("/operator") ? "Operator" : "");
    document.title = name ? `${name} · Nexus` : "Nexus";
  }, [path]);

  // A new page (not a new address within one, as /chat -> /chat/{id}) moves focus to its content: keyboard and
  // screen-reader users start there instead of on the link they followed.
  const section = path.split("/")[1];
  const shown = useRef(section);
  useEffect(() => {
    if (section === shown.current) return;
    shown.current = section;
    document.getElementById("main")?.focus();
  }, [section]);

  if (me === undefined) return <Loading what="Starting" />;
  if (me === null) return <SignInPage onSignedIn={load} />;

  const signOut = () =>
    run(async () => {
      await must(api.POST("/auth/logout"));
      setMe(null);
      navigate("/signin", true);
    });

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/library" className="brand">
          Nexus
        </Link>
        <nav aria-label="Main">
          {NAV.map(([to, label]) => (
            <Link key={to} to={to} className={path.startsWith(to) ? "active" : ""}>
              {label}
            </Link>
          ))}
          {me.user.is_admin && (
            <Link to="/operator" className={path.startsWith("/operator") ? "active" : ""}>
              Operator
            </Link>
          )}
        </nav>
        <div className="who">
          <ThemeToggle />
          <span className="muted email" title={me.user.email}>
            {me.user.email}
          </span>
          <button className="ghost" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page path={path} me={me} config={config} />
      </main>
    </>
  );
}

function Page({ path, me, config }: { path: string; me: Me; config: Config | null }) {
  let m: Record<string, string> | null;
  if ((m = match("/media/:id", path))) return <MediaPage id={m.id} />;
  if ((m = match("/jobs/:id", path))) return <JobPage id={m.id} />;
  if ((m = match("/chat/:id", path))) return <ChatPage conversationId={m.id} config={config} />;
  if (match("/chat", path)) return <ChatPage conversationId={null} config={config} />;
  if (match("/search", path)) return <SearchPage />;
  if (match("/integrations", path)) return <IntegrationsPage config={config} />;
  if (match("/settings", path)) return <SettingsPage />;
  if (match("/operator", path) && me.user.is_admin) return <OperatorPage config={config} />;
  return <LibraryPage />;
}

function ThemeToggle() {
  const [theme, setTheme] = useState(() => localStorage.getItem("nexus-theme") ?? "system");
  useEffect(() => {
    if (theme === "system") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    localStorage.setItem("nexus-theme", theme);
  }, [theme]);
  return (
    <select aria-label="Theme" value={theme} onChange={(e) => setTheme(e.target.value)}>
      <option value="system">System</option>
      <option value="light">Light</option>
      <option value="dark">Dark</option>
    </select>
  );
}
