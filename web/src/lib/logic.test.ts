import { describe, expect, it } from "vitest";
import { clock } from "./format";
import { match } from "./router";
import { parseBlock, readEvents } from "./sse";

describe("router", () => {
  it("matches a page's path and decodes its parameters", () => {
    expect(match("/media/:id", "/media/a%20b")).toEqual({ id: "a b" });
    expect(match("/media/:id", "/media/1/extra")).toBeNull();
    expect(match("/chat", "/chat/")).toEqual({});
    expect(match("/", "/library")).toBeNull();
  });
});

describe("clock", () => {
  it("shows hours only when there are some", () => {
    expect(clock(65.9)).toBe("1:05");
    expect(clock(3725)).toBe("1:02:05");
  });
});

describe("server-sent events", () => {
  it("parses named events with multi-line data and skips comments", () => {
    expect(parseBlock(": keepalive")).toBeNull();
    expect(parseBlock("event: token\nid: 7\ndata: {\"a\":\ndata: 1}")).toEqual({ event: "token", id: "7", data: '{"a":\n1}' });
  });

  it("reassembles events split across network chunks", async () => {
    const parts = ["event: turn\nda", "ta: 1\n\nevent: tok", "en\ndata: 2\r\n\r\n"];
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const p of parts) c.enqueue(new TextEncoder().encode(p));
        c.close();
      },
    });
    const seen = [];
    for await (const e of readEvents(body)) seen.push([e.event, e.data]);
    expect(seen).toEqual([
      ["turn", "1"],
      ["token", "2"],
    ]);
  });
});
