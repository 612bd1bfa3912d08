import { defineConfig } from "vitest/config";

declare const process: { env: Record<string, string | undefined> };

// The console is served by the API at `/` (same origin: the session cookie needs no CORS).
// `npm run dev` proxies the API so the page can be worked on with hot reload.
const api = process.env.NEXUS_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, chunkSizeWarningLimit: 400 },
  server: {
    proxy: Object.fromEntries(["/api", "/auth", "/ws", "/health"].map((p) => [p, { target: api, ws: p === "/ws" }])),
  },
  test: { environment: "jsdom", include: ["src/**/*.test.{ts,tsx}"] },
});
