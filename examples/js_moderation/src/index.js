// The moderation workflow as the Workflows guides write it (human review with
// step.waitForEvent), with the review timeout from vars and local stand-ins for the services.
import { WorkflowEntrypoint } from "cloudflare:workers";
import { emails, postState, services } from "./services.js";

export class ModerationWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const { thornScan, petalScan, flagPost, publishPost, rejectPost, ivy } = services(this.env);

    const thornResult = await step.do("thorn-scan", () => thornScan(event.payload));
    const petalResult = await step.do("petal-scan", () => petalScan(event.payload));

    if (thornResult.flagged || petalResult.flagged) {
      // Hold post, notify moderator
      await step.do("flag-for-review", () => flagPost(event.payload.postId));
      await step.do("notify-moderator", () => ivy.send({ template: "mod-review-needed" }));

      // Wait up to 48 hours for manual review decision
      const decision = await step.waitForEvent("mod-decision", { timeout: this.env.REVIEW_TIMEOUT });

      if (decision.payload.approved) {
        await step.do("approve-post", () => publishPost(event.payload.postId));
      } else {
        await step.do("reject-post", () => rejectPost(event.payload.postId));
        await step.do("notify-author", () => ivy.send({ template: "post-rejected" }));
      }
    } else {
      await step.do("publish-post", () => publishPost(event.payload.postId));
    }
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/posts") {
      const post = await request.json();
      const instance = await env.MODERATION.create({ id: post.postId, params: post });
      return Response.json({ id: instance.id }, { status: 201 });
    }
    const decision = url.pathname.match(/^\/posts\/([^/]+)\/decision$/);
    if (request.method === "POST" && decision) {
      const { approved } = await request.json();
      const instance = await env.MODERATION.get(decision[1]);
      await instance.sendEvent({ type: "mod-decision", payload: { approved } });
      return Response.json({ sent: true });
    }
    const post = url.pathname.match(/^\/posts\/([^/]+)$/);
    if (request.method === "GET" && post) {
      const instance = await env.MODERATION.get(post[1]);
      return Response.json({ ...(await instance.status()), post: await postState(env, post[1]) });
    }
    if (request.method === "GET" && url.pathname === "/emails") {
      return Response.json((await emails(env)).map((email) => email.template));
    }
    return new Response("not found", { status: 404 });
  },
};
