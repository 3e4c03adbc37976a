// A test client of the horsestream gateway built on the OFFICIAL socket.io-client, driven by
// api/tests/gateway.rs: it prints one JSON object per line on stdout and takes commands on stdin
// ("drop <client>" closes that client's transport, "quit" ends).
//
// Env: HS_URLS (comma-separated gateway URLs), HS_STREAM, HS_ADMIN_USER/HS_ADMIN_PASSWORD,
// HS_VIEWER_USER/HS_VIEWER_PASSWORD.
//
// What it does:
//  1. refusals: a handshake without a token, with a forged token and with an `alg: none` token
//     must end in connect_error; a viewer subscribing to `metrics` must get a `forbidden` ack,
//     and a malformed subscribe an `invalid_body` ack;
//  2. client A (admin, first URL, channels chunks+status) and client B (viewer, last URL, every
//     channel it may read) log in over HTTP, connect with their token and subscribe; on every
//     (re)connection they subscribe again; when the server disconnects them (token expiry) they
//     refresh their token over HTTP and reconnect.
import { io } from "socket.io-client";
import readline from "node:readline";

const urls = process.env.HS_URLS.split(",");
const stream = process.env.HS_STREAM;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

async function post(url, path, body) {
  const res = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path} ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const b64url = (s) => Buffer.from(s).toString("base64url");

// Connects once without reconnection; resolves with how the handshake ended.
function tryHandshake(url, auth) {
  return new Promise((resolve) => {
    const s = io(url, { auth, reconnection: false, timeout: 5000, forceNew: true });
    const done = (r) => { s.close(); resolve(r); };
    s.on("connect", () => done({ connected: true }));
    s.on("connect_error", (e) => done({ connected: false, message: e.message }));
  });
}

function connectOnce(url, token) {
  return new Promise((resolve, reject) => {
    const s = io(url, { auth: { token }, reconnection: false, forceNew: true });
    s.on("connect", () => resolve(s));
    s.on("connect_error", (e) => reject(e));
  });
}

class Client {
  constructor(name, url, user, password, channels) {
    Object.assign(this, { name, url, user, password, channels, subscribed: 0 });
  }

  async start() {
    const login = await post(this.url, "/api/v1/auth/login", { username: this.user, password: this.password });
    this.access = login.accessToken;
    this.refresh = login.refreshToken;
    out({ type: "login", client: this.name, role: login.user.role, expiresIn: login.expiresIn });
    this.socket = io(this.url, {
      // A function, so every (re)connection presents the current token.
      auth: (cb) => cb({ token: this.access }),
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      forceNew: true,
    });
    const s = this.socket;
    s.on("connect", async () => {
      const req = { streamId: stream };
      if (this.channels) req.channels = this.channels;
      const ack = await s.timeout(5000).emitWithAck("subscribe", req);
      this.subscribed += 1;
      out({ type: "subscribed", client: this.name, n: this.subscribed, transport: s.io.engine.transport.name, ack });
    });
    s.on("disconnect", async (reason) => {
      out({ type: "disconnect", client: this.name, reason });
      if (reason === "io server disconnect") {
        // The server does not take us back with this token: refresh it, then reconnect.
        await this.refreshToken();
        s.connect();
      }
    });
    s.on("connect_error", async (e) => {
      out({ type: "connect_error", client: this.name, message: e.message });
      if (!s.active) {
        await this.refreshToken();
        s.connect();
      }
    });
    s.on("auth:expired", () => out({ type: "auth:expired", client: this.name }));
    for (const name of ["chunk:processed", "stream:status"]) {
      s.on(name, (payload) => out({ type: "event", client: this.name, name, payload }));
    }
  }

  async refreshToken() {
    const r = await post(this.url, "/api/v1/auth/refresh", { refreshToken: this.refresh });
    this.access = r.accessToken;
    this.refresh = r.refreshToken;
    out({ type: "refreshed", client: this.name });
  }
}

async function refusals() {
  const url = urls[0];
  out({ type: "refused", case: "no-token", ...(await tryHandshake(url, undefined)) });
  out({ type: "refused", case: "empty-token", ...(await tryHandshake(url, { token: "" })) });
  const admin = await post(url, "/api/v1/auth/login", {
    username: process.env.HS_ADMIN_USER, password: process.env.HS_ADMIN_PASSWORD,
  });
  const [h, claims, sig] = admin.accessToken.split(".");
  const forgedSig = sig.slice(0, -2) + (sig.endsWith("AA") ? "BB" : "AA");
  out({ type: "refused", case: "forged", ...(await tryHandshake(url, { token: `${h}.${claims}.${forgedSig}` })) });
  const none = `${b64url('{"alg":"none","typ":"JWT"}')}.${claims}.`;
  out({ type: "refused", case: "alg-none", ...(await tryHandshake(url, { token: none })) });
  out({ type: "refused", case: "refresh-as-access", ...(await tryHandshake(url, { token: admin.refreshToken })) });
  out({ type: "accepted", case: "valid", ...(await tryHandshake(url, { token: admin.accessToken })) });

  const viewer = await post(url, "/api/v1/auth/login", {
    username: process.env.HS_VIEWER_USER, password: process.env.HS_VIEWER_PASSWORD,
  });
  const s = await connectOnce(url, viewer.accessToken);
  const forbidden = await s.timeout(5000).emitWithAck("subscribe", { streamId: stream, channels: ["metrics"] });
  out({ type: "check", case: "viewer-metrics", ack: forbidden });
  const malformed = await s.timeout(5000).emitWithAck("subscribe", { stream: 1 });
  out({ type: "check", case: "malformed", ack: malformed });
  const unknown = await s.timeout(5000).emitWithAck("subscribe", { streamId: stream, channels: ["video"] });
  out({ type: "check", case: "unknown-channel", ack: unknown });
  const unsub = await s.timeout(5000).emitWithAck("unsubscribe", { streamId: stream });
  out({ type: "check", case: "unsubscribe", ack: unsub });
  s.close();
}

const clients = {};
const deadline = setTimeout(() => {
  out({ type: "error", message: "client timed out" });
  process.exit(2);
}, 90_000);

try {
  await refusals();
  clients.A = new Client("A", urls[0], process.env.HS_ADMIN_USER, process.env.HS_ADMIN_PASSWORD, ["chunks", "status"]);
  clients.B = new Client("B", urls[urls.length - 1], process.env.HS_VIEWER_USER, process.env.HS_VIEWER_PASSWORD, null);
  await clients.A.start();
  await clients.B.start();
} catch (e) {
  out({ type: "error", message: String(e && e.stack || e) });
  process.exit(1);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === "drop") {
    // Lose the connection under the client: its WebSocket closes as when the network or a
    // replica goes away ("transport close"), and the client reconnects by itself.
    const engine = clients[arg].socket.io.engine;
    const transport = engine.transport.name;
    if (engine.transport.ws) engine.transport.ws.close();
    else engine.close();
    out({ type: "dropped", client: arg, transport });
  } else if (cmd === "quit") {
    for (const c of Object.values(clients)) c.socket.close();
    clearTimeout(deadline);
    out({ type: "done" });
    rl.close();
    setTimeout(() => process.exit(0), 50);
  }
});
