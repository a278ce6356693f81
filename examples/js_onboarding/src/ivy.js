// A stand-in for Ivy, the email service of the guide: each email goes to the user's outbox in
// KV, and to IVY_URL (as a JSON POST) when that var is set.
export class Ivy {
  constructor(env) {
    this.env = env;
  }

  async send(email) {
    const sentAt = Date.now();
    const key = `email:${email.to}:${String(sentAt).padStart(15, "0")}:${crypto.randomUUID()}`;
    await this.env.APP_KV.put(key, JSON.stringify({ ...email, sentAt }));
    if (this.env.IVY_URL) {
      const response = await fetch(this.env.IVY_URL, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(email),
      });
      if (!response.ok) throw new Error(`Ivy answered ${response.status}`);
    }
  }

  async outbox(to) {
    const emails = [];
    for (const key of (await this.env.APP_KV.list({ prefix: `email:${to}:` })).keys) {
      emails.push(await this.env.APP_KV.get(key.name, "json"));
    }
    return emails;
  }
}

export async function checkFirstPost(env, userId) {
  return (await env.APP_KV.get(`posted:${userId}`)) !== null;
}
