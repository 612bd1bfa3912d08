import { useEffect, useRef, useState } from "react";
import type { Config } from "../App";
import { api, explain, must, withCsrf, type Schemas } from "../api/client";
import { Empty, Failed, Link, Loading, useAction, useLoad, useNotify } from "../components/ui";
import { clock } from "../lib/format";
import { navigate } from "../lib/router";
import { readEvents } from "../lib/sse";

interface Citation {
  n?: number; // the answer's [n] (older answers lack it: their chips count from 1)
  media_id: string;
  title: string | null;
  at: number;
  start: number;
  snippet?: string;
}
interface Shown {
  role: string;
  content: string;
  citations: Citation[];
  state?: "streaming" | "stopped" | "error";
}

/** Conversations, a streaming answer with a stop button, citations that open the player, personas, memories. */
export function ChatPage({ conversationId, config }: { conversationId: string | null; config: Config | null }) {
  const conversations = useLoad(() => must(api.GET("/api/conversations")), []);
  const personas = useLoad(() => must(api.GET("/api/personas")), []);
  const [messages, setMessages] = useState<Shown[]>([]);
  const [loading, setLoading] = useState(false);
  const [text, setText] = useState("");
  const [persona, setPersona] = useState("");
  const [turn, setTurn] = useState<string | null>(null);
  const [streaming, setStreaming] = useState(false);
  const notify = useNotify();
  const end = useRef<HTMLDivElement>(null);
  const keep = useRef<string | null>(null); // the conversation this page just created: its stream is ours
  const stream = useRef<AbortController | null>(null); // the answer streaming now, if any

  useEffect(() => {
    if (keep.current === conversationId && conversationId) {
      keep.current = null; // navigated here by our own first answer: already shown, its stream goes on
      return;
    }
    // Another conversation (or a new one): an answer still streaming belongs to the one left behind.
    stream.current?.abort();
    if (!conversationId) return setMessages([]);
    setLoading(true);
    must(api.GET("/api/conversations/{conversation_id}/messages", { params: { path: { conversation_id: conversationId } } }))
      .then((list) => setMessages(list.map((m) => ({ role: m.role, content: m.content, citations: m.citations as unknown as Citation[] }))))
      .catch((e: Error) => notify(e.message))
      .finally(() => setLoading(false));
  }, [conversationId]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => () => stream.current?.abort(), []); // leaving the page ends the stream (its turn goes on)

  useEffect(() => {
    // The conversation's persona, so a follow-up keeps it (the API changes it only when told to).
    const current = conversations.data?.find((c) => c.id === conversationId);
    if (current) setPersona(current.persona_id ?? ""); // a new one (not listed yet) keeps the choice made for it
  }, [conversationId, conversations.data]);

  useEffect(() => {
    // Braces matter: Chromium's scrollIntoView now returns a promise, which an effect must not return.
    end.current?.scrollIntoView?.({ block: "end" });
  }, [messages]);

  const update = (f: (last: Shown) => Shown) =>
    setMessages((list) => (list.length ? [...list.slice(0, -1), f(list[list.length - 1])] : list));

  const send = async (e: React.FormEvent) => {
    e.preventDefault();
    const question = text.trim();
    if (!question || streaming) return;
    setText("");
    setMessages((list) => [...list, { role: "user", content: question, citations: [] }, { role: "assistant", content: "", citations: [], state: "streaming" }]);
    setStreaming(true);
    const controller = new AbortController();
    stream.current = controller;
    let ended = false;
    try {
      const headers = new Headers({ "Content-Type": "application/json", Accept: "text/event-stream" });
      withCsrf(headers, "POST");
      const body = { message: question, conversation_id: conversationId, persona_id: persona || null };
      const response = await fetch("/api/chat", { method: "POST", headers, body: JSON.stringify(body), signal: controller.signal });
      if (!response.ok || !response.body) throw new Error(explain(await response.json().catch(() => null), response.status));
      for await (const event of readEvents(response.body, controller.signal)) {
        if (controller.signal.aborted) break;
        const data = JSON.parse(event.data);
        ended ||= event.event === "final" || event.event === "error";
        if (event.event === "turn") {
          setTurn(data.turn_id);
          if (!conversationId) {
            // A real navigation (the shell learns the id: follow-ups continue this conversation), which this
            // page's effect recognises as its own and leaves the stream running.
            keep.current = data.conversation_id;
            navigate(`/chat/${data.conversation_id}`, true);
          }
        } else if (event.event === "token") update((m) => ({ ...m, content: m.content + data.text }));
        else if (event.event === "reset") update((m) => ({ ...m, content: "" }));
        else if (event.event === "final") update((m) => ({ ...m, content: data.content, citations: data.citations ?? [], state: undefined }));
        else if (event.event === "error") {
          const stopped = String(data.message ?? "").includes("stopped");
          update((m) => ({ ...m, state: stopped ? "stopped" : "error", content: m.content || (stopped ? "" : data.message) }));
          if (!stopped) notify(data.message ?? "the answer failed");
        }
      }
      if (!ended && !controller.signal.aborted) throw new Error("the connection closed before the answer ended: reopen the conversation to see it");
    } catch (error) {
      if (controller.signal.aborted) return; // left for another conversation: nothing of it to show here
      update((m) => ({ ...m, state: "error" }));
      notify((error as Error).message);
    } finally {
      if (stream.current === controller) {
        stream.current = null;
        setStreaming(false);
        setTurn(null);
      }
      conversations.reload();
    }
  };

  const stop = async () => {
    if (!turn) return;
    const { error, response } = await api.POST("/api/chat/{turn_id}/stop", { params: { path: { turn_id: turn } } });
    if (!response.ok && response.status !== 409) notify(explain(error, response.status));
  };

  return (
    <section className="chat-layout">
      <aside aria-label="Conversations" className="sidebar">
        <button className="primary wide" onClick={() => navigate("/chat")}>
          New conversation
        </button>
        {conversations.error && <Failed error={conversations.error} retry={conversations.reload} />}
        <ul>
          {conversations.data?.map((c) => (
            <li key={c.id} className={c.id === conversationId ? "active" : ""}>
              <Link to={`/chat/${c.id}`}>{c.title || "Untitled"}</Link>
            </li>
          ))}
        </ul>
        <MemoryPanel />
      </aside>
      <div className="conversation">
        <h1>Chat</h1>
        {loading && <Loading />}
        {!loading && messages.length === 0 && <Empty>Ask about anything you have added: answers cite the second they come from.</Empty>}
        <ol className="messages" aria-live="polite">
          {messages.map((m, i) => (
            <li key={i} className={`message ${m.role}`} data-testid={`message-${m.role}`}>
              <div className="content">
                {m.content || (m.state === "streaming" ? <span className="muted">Thinking…</span> : "")}
                {m.state === "stopped" && <span className="muted"> (stopped)</span>}
              </div>
              {m.citations.length > 0 && (
                <div className="citations" aria-label="Sources">
                  {m.citations.map((c, j) => (
                    <button key={j} className="chip citation" title={c.snippet} onClick={() => navigate(`/media/${c.media_id}?t=${Math.floor(c.at ?? c.start)}`)}>
                      [{c.n ?? j + 1}] {c.title || "Untitled"} · {clock(c.at ?? c.start)}
                    </button>
                  ))}
                </div>
              )}
            </li>
          ))}
        </ol>
        <div ref={end} />
        <form className="composer" onSubmit={send}>
          <label htmlFor="persona" className="sr-only">
            Persona
          </label>
          <select id="persona" value={persona} onChange={(e) => setPersona(e.target.value)}>
            <option value="">Default voice</option>
            {personas.data?.map((p: Schemas["PersonaOut"]) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
          <label htmlFor="message" className="sr-only">
            Message
          </label>
          <textarea
            id="message"
            rows={2}
            value={text}
            placeholder={`Ask${config?.chat_providers.length ? ` (${config.chat_providers[0]})` : ""}…`}
            onChange={(e) => setText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                e.currentTarget.form?.requestSubmit();
              }
            }}
          />
          {streaming ? (
            <button type="button" onClick={stop}>
              ■ Stop
            </button>
          ) : (
            <button className="primary" disabled={!text.trim()}>
              Send
            </button>
          )}
        </form>
      </div>
    </section>
  );
}

function MemoryPanel() {
  const memories = useLoad(() => must(api.GET("/api/memories", { params: { query: { limit: 1000 } } })), []);
  const { run } = useAction();
  const forget = (id: string) =>
    run(async () => {
      await must(api.DELETE("/api/memories/{memory_id}", { params: { path: { memory_id: id } } }));
      memories.reload();
    });
  return (
    <details className="memories">
      <summary>What Nexus remembers</summary>
      {memories.error && <Failed error={memories.error} retry={memories.reload} />}
      {memories.data?.length === 0 && <p className="muted small">Nothing yet.</p>}
      <ul>
        {memories.data?.map((m) => (
          <li key={m.id} className="row">
            <span className="grow small">{m.text}</span>
            <button className="ghost" aria-label={`Forget: ${m.text}`} onClick={() => forget(m.id)}>
              ×
            </button>
          </li>
        ))}
      </ul>
    </details>
  );
}
