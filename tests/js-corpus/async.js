// Timers, microtasks, AbortController and EventTarget, in the order they run.
export default {
  async fetch() {
    const order = [];
    queueMicrotask(() => order.push("microtask"));
    await new Promise((resolve) => setTimeout(() => { order.push("timeout"); resolve(); }, 5));
    const cleared = setTimeout(() => order.push("cleared"), 1);
    clearTimeout(cleared);
    let ticks = 0;
    await new Promise((resolve) => {
      const id = setInterval(() => { if (++ticks === 3) { clearInterval(id); resolve(); } }, 1);
    });
    const controller = new AbortController();
    const reasons = [];
    controller.signal.addEventListener("abort", () => reasons.push("abort event"));
    controller.abort();
    const target = new EventTarget();
    target.addEventListener("ping", (event) => reasons.push(event.type));
    target.dispatchEvent(new Event("ping"));
    await new Promise((resolve) => setTimeout(resolve, 10));
    return Response.json({ order, ticks, aborted: controller.signal.aborted, reasons });
  },
};
