// A small notes API on Hono: routes with parameters, JSON bodies, a logger-style middleware that
// sets a response header, Hono's own middleware (secureHeaders), and notes kept in KV.
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";

type Bindings = { NOTES: KVNamespace; SERVICE: string };

interface Note {
  id: string;
  text: string;
}

const app = new Hono<{ Bindings: Bindings }>();

app.use("*", secureHeaders());
app.use("*", async (c, next) => {
  await next();
  c.header("x-service", c.env.SERVICE);
});

app.get("/", (c) => c.text("Hono on Burrow"));

app.post("/notes", async (c) => {
  const body = await c.req.json<{ text?: string }>();
  if (typeof body.text !== "string" || body.text.length === 0) {
    return c.json({ error: "text is required" }, 400);
  }
  const note: Note = { id: crypto.randomUUID(), text: body.text };
  await c.env.NOTES.put(`note:${note.id}`, JSON.stringify(note));
  return c.json(note, 201);
});

app.get("/notes", async (c) => {
  const listed = await c.env.NOTES.list({ prefix: "note:" });
  const notes = await Promise.all(listed.keys.map((key) => c.env.NOTES.get<Note>(key.name, "json")));
  return c.json({ notes: notes.filter((note) => note !== null) });
});

app.get("/notes/:id", async (c) => {
  const note = await c.env.NOTES.get<Note>(`note:${c.req.param("id")}`, "json");
  return note ? c.json(note) : c.json({ error: "not found" }, 404);
});

app.notFound((c) => c.json({ error: `no route for ${c.req.path}` }, 404));

export default app;
