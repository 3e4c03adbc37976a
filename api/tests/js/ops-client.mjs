// Test clients of `horsestream api` built on the OFFICIAL socket.io-client, driven by the root
// crate's tests/api_ops.rs. One JSON object per line on stdout; commands on stdin.
//
// Env: HS_URL (http:// or https://), HS_USER / HS_PASSWORD (an admin), HS_STREAM, HS_MODE,
// HS_CA (PEM file of the CA to trust for https; without it Node's default roots).
//
// HS_MODE=watch: log in, connect one client (websocket only), subscribe to HS_STREAM and print
//   every event it receives. Commands: "untrusted" (a second connection that does not trust
//   HS_CA must fail), "flood N" (subscribe to N more streams), "quit".
// HS_MODE=hostile: register HS_STREAM over REST, connect a witness W (subscribed) and a hostile
//   client H, send H's hostile messages one by one and print each answer ({type:"case"}), then
//   subscribe H properly. Commands: "oversize" (H sends a message over the gateway's payload
//   limit; its disconnect is printed, then H reconnects and subscribes again), "quit".
import { io } from "socket.io-client";
import https from "node:https";
import fs from "node:fs";
import readline from "node:readline";

const url = process.env.HS_URL;
const stream = process.env.HS_STREAM;
const mode = process.env.HS_MODE;
const ca = process.env.HS_CA ? fs.readFileSync(process.env.HS_CA) : undefined;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// POST/GET with JSON, through https.request when a CA is given (fetch cannot take one).
function request(method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const data = body === undefined ? undefined : JSON.stringify(body);
  if (!url.startsWith("https:")) {
    return fetch(url + path, { method, headers, body: data }).then(async (r) => ({
      status: r.status,
      json: await r.json().catch(() => null),
    }));
  }
  return new Promise((resolve, reject) => {
    const req = https.request(url + path, { method, headers, ca }, (res) => {
      const tls = res.socket.getProtocol();
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        let json = null;
        try { json = JSON.parse(text); } catch {}
        resolve({ status: res.statusCode, json, tls });
      });
    });
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

async function login() {
  const r = await request("POST", "/api/v1/auth/login", {
    username: process.env.HS_USER,
    password: process.env.HS_PASSWORD,
  });
  if (r.status !== 200) throw new Error(`login ${r.status} ${JSON.stringify(r.json)}`);
  out({ type: "login", status: r.status, tls: r.tls ?? null });
  return r.json.accessToken;
}

function connect(name, token, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = io(url, {
      auth: { token },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      timeout: 10000,
      ca,
      ...opts,
    });
    s.onAny((event, payload) => out({ type: "event", client: name, name: event, payload }));
    s.on("disconnect", (reason) => out({ type: "disconnect", client: name, reason }));
    s.once("connect", () => {
      out({ type: "connected", client: name, transport: s.io.engine.transport.name });
      resolve(s);
    });
    s.once("connect_error", (e) => reject(e));
  });
}

async function subscribe(name, s) {
  const ack = await s.timeout(10000).emitWithAck("subscribe", { streamId: stream });
  out({ type: "subscribed", client: name, ack });
  return ack;
}

// The next `gateway:error` event of `s` (or a timeout, printed as such).
function nextGatewayError(s) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({ timeout: true }), 10000);
    s.once("gateway:error", (e) => { clearTimeout(t); resolve(e); });
  });
}

function nested(depth) {
  let v = "chunks";
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

async function hostile(token) {
  const created = await request("POST", "/api/v1/streams", {
    id: stream,
    name: "hostile test",
    sourceUrl: "/nonexistent/video.mp4",
    sourceKind: "file",
  }, token);
  out({ type: "created", status: created.status });
  const w = await connect("W", token);
  await subscribe("W", w);
  const h = await connect("H", token);
  const big = "x".repeat(90_000);
  // [name, event, args, expect-ack]
  const cases = [
    ["number instead of object", "subscribe", [42]],
    ["string instead of object", "subscribe", ["paddock-1"]],
    ["null", "subscribe", [null]],
    ["missing streamId", "subscribe", [{}]],
    ["streamId of the wrong type", "subscribe", [{ streamId: 5 }]],
    ["channels not an array", "subscribe", [{ streamId: stream, channels: "chunks" }]],
    ["channels of the wrong type", "subscribe", [{ streamId: stream, channels: [1, 2] }]],
    ["unknown field", "subscribe", [{ streamId: stream, admin: true }]],
    ["unknown channel", "subscribe", [{ streamId: stream, channels: ["video"] }]],
    ["empty streamId", "subscribe", [{ streamId: "" }]],
    ["control characters in streamId", "subscribe", [{ streamId: "cam\u0000\u001b[2J" }]],
    ["room separator in streamId", "subscribe", [{ streamId: `${stream}#chunks` }]],
    ["huge streamId (90 KB)", "subscribe", [{ streamId: big }]],
    ["huge channel name (90 KB)", "subscribe", [{ streamId: stream, channels: [big] }]],
    ["unknown stream", "subscribe", [{ streamId: `no-such-stream-${Date.now()}` }]],
    ["SQL injection in streamId", "subscribe", [{ streamId: "x'; DROP TABLE streams; --" }]],
    ["SQL injection in a channel", "subscribe", [{ streamId: stream, channels: ["chunks' OR '1'='1"] }]],
    ["deeply nested JSON (1,000 levels)", "subscribe", [{ streamId: stream, channels: nested(1_000) }]],
    ["binary attachment instead of object", "subscribe", [Buffer.from([0, 1, 2, 255])]],
    ["binary streamId", "subscribe", [{ streamId: Buffer.from("paddock") }]],
    ["unsubscribe with the wrong types", "unsubscribe", [{ streamId: stream, channels: 3 }]],
    ["unknown event", "admin:drop-tables", [{ all: true }]],
    ["unknown event with a binary attachment", "video:upload", [Buffer.alloc(1024, 7)]],
  ];
  for (const [name, event, args] of cases) {
    try {
      const ack = await h.timeout(10000).emitWithAck(event, ...args);
      out({ type: "case", name, event, ack, connected: h.connected });
    } catch (e) {
      out({ type: "case", name, event, failed: String(e), connected: h.connected });
    }
  }
  // Without an acknowledgement, refusals come as `gateway:error`.
  for (const [name, event, args] of [
    ["no ack: malformed subscribe", "subscribe", [7]],
    ["no ack: unknown event", "video:start", [{ camera: "../../etc/passwd" }]],
  ]) {
    const got = nextGatewayError(h);
    h.emit(event, ...args);
    out({ type: "case", name, event, gatewayError: await got, connected: h.connected });
  }
  await subscribe("H", h);
  out({ type: "ready" });
  return { w, h };
}

async function main() {
  const token = await login();
  let clients = {};
  if (mode === "watch") {
    const s = await connect("A", token);
    await subscribe("A", s);
    clients.A = s;
  } else if (mode === "hostile") {
    clients = await hostile(token);
  } else {
    throw new Error(`unknown HS_MODE ${mode}`);
  }
  out({ type: "waiting" });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === "quit") break;
    if (cmd === "untrusted") {
      try {
        const s = await connect("U", token, { ca: undefined });
        out({ type: "untrusted", connected: true });
        s.close();
      } catch (e) {
        out({ type: "untrusted", connected: false, message: String(e.message), cause: String(e.description?.message ?? e.description ?? "") });
      }
    } else if (cmd.startsWith("flood ")) {
      // Subscribes A to N more streams; prints how many were accepted and the refusals' codes.
      const n = Number(cmd.split(" ")[1]);
      const codes = {};
      let ok = 0;
      for (let i = 0; i < n; i++) {
        const ack = await clients.A.timeout(10000).emitWithAck("subscribe", { streamId: `${stream}-f${i}`, channels: ["chunks"] });
        if (ack.ok) ok += 1;
        else codes[ack.error.code] = (codes[ack.error.code] ?? 0) + 1;
      }
      out({ type: "flood", ok, codes });
    } else if (cmd === "oversize") {
      const gone = new Promise((r) => clients.h.once("disconnect", r));
      clients.h.emit("subscribe", { streamId: "y".repeat(200_000) });
      const reason = await gone;
      out({ type: "oversize", reason });
      clients.h = await connect("H2", token);
      await subscribe("H2", clients.h);
    }
    out({ type: "done", cmd });
  }
  for (const s of Object.values(clients)) s.close();
  out({ type: "bye" });
  process.exit(0);
}

main().catch((e) => {
  out({ type: "error", message: String(e && e.stack || e) });
  process.exit(1);
});
