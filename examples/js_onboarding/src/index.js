// The onboarding drip workflow as the Workflows guides write it, with the waits taken from vars
// and the email service replaced by a local stand-in (./ivy.js).
import { WorkflowEntrypoint } from "cloudflare:workers";
import { Ivy, checkFirstPost } from "./ivy.js";

export class OnboardingWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const ivy = new Ivy(this.env);

    // Step 1 — runs immediately
    await step.do("send-welcome-email", async () => {
      await ivy.send({ to: event.payload.email, template: "welcome" });
    });

    // Step 2 — literally waits 24 hours, survives any restarts
    await step.sleep("wait-day-1", this.env.DAY_1);

    // Step 3 — checks state, branches
    await step.do("day-1-nudge", async () => {
      const hasPosted = await checkFirstPost(this.env, event.payload.userId);
      if (!hasPosted) {
        await ivy.send({ to: event.payload.email, template: "nudge-first-post" });
      }
    });

    await step.sleep("wait-week-1", this.env.WEEK_1);

    await step.do("week-1-tips", async () => {
      await ivy.send({ to: event.payload.email, template: "getting-started-tips" });
    });
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/users") {
      const { userId, email } = await request.json();
      const instance = await env.ONBOARDING.create({ id: userId, params: { userId, email } });
      return Response.json({ id: instance.id }, { status: 201 });
    }
    const posts = url.pathname.match(/^\/users\/([^/]+)\/posts$/);
    if (request.method === "POST" && posts) {
      await env.APP_KV.put(`posted:${posts[1]}`, "1");
      return Response.json({ posted: true });
    }
    const user = url.pathname.match(/^\/users\/([^/]+)$/);
    if (request.method === "GET" && user) {
      const instance = await env.ONBOARDING.get(user[1]);
      const status = await instance.status();
      const email = url.searchParams.get("email");
      const emails = email ? await new Ivy(env).outbox(email) : [];
      return Response.json({ ...status, emails: emails.map((e) => e.template) });
    }
    return new Response("not found", { status: 404 });
  },
};
