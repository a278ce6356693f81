// Local stand-ins for the services the guide's moderation pipeline calls: the text and image
// scanners (Thorn, Petal), the post store, and the email service (Ivy). State lives in KV.

export function services(env) {
  const setPost = async (postId, status) => {
    await env.APP_KV.put(`post:${postId}`, status);
    return status;
  };
  return {
    // Flags text containing "spam".
    thornScan: async (payload) => ({ flagged: /spam/i.test(payload.content ?? "") }),
    // Flags images named "nsfw".
    petalScan: async (payload) => ({ flagged: (payload.images ?? []).some((image) => /nsfw/i.test(image)) }),
    flagPost: (postId) => setPost(postId, "held"),
    publishPost: (postId) => setPost(postId, "published"),
    rejectPost: (postId) => setPost(postId, "rejected"),
    ivy: {
      async send(email) {
        const key = `email:${String(Date.now()).padStart(15, "0")}:${crypto.randomUUID()}`;
        await env.APP_KV.put(key, JSON.stringify(email));
      },
    },
  };
}

export async function postState(env, postId) {
  return await env.APP_KV.get(`post:${postId}`);
}

export async function emails(env) {
  const sent = [];
  for (const key of (await env.APP_KV.list({ prefix: "email:" })).keys) {
    sent.push(await env.APP_KV.get(key.name, "json"));
  }
  return sent;
}
