// structuredClone and the random parts of crypto (checked for shape, not value).
export default {
  fetch() {
    const original = { date: new Date(0), map: new Map([["k", [1, 2]]]), set: new Set([1]), nested: { a: [1, { b: 2 }] } };
    original.self = original;
    const copy = structuredClone(original);
    const uuid = crypto.randomUUID();
    const random = crypto.getRandomValues(new Uint8Array(16));
    let cloneError = "none";
    try {
      structuredClone({ f() {} });
    } catch (error) {
      cloneError = error.name;
    }
    return Response.json({
      distinct: copy !== original && copy.nested !== original.nested,
      cycle: copy.self === copy,
      date: copy.date instanceof Date && copy.date.getTime() === 0,
      map: copy.map.get("k"),
      set: copy.set.has(1),
      uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid),
      random: random.length,
      cloneError,
    });
  },
};
