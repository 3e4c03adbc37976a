// A viewer of one stream built on the OFFICIAL socket.io-client (the web client's own
// dependency), driven by tests/web_live.rs against a real `horsestream api` fed by a real
// `horsestream dataflow`: it logs in over HTTP, connects with its access token, subscribes to
// HS_STREAM on every (re)connection, and prints one JSON line per happening on stdout:
//   {"type":"login"} {"type":"connect","n"} {"type":"subscribed","n","ack"}
//   {"type":"detections","n","sequence","frames","boxes","horses":[…],"tracks":[…]}
//   {"type":"disconnect","reason"} {"type":"connect_error","message"}
// stdin: "quit" ends it. Losing the connection (the API process restarted) is handled by the
// client's own reconnection; a server-side disconnect (token expiry) refreshes the token first.
//
// Env: HS_URL, HS_USER, HS_PASSWORD, HS_STREAM.
import { io } from "socket.io-client";
import readline from "node:readline";

const { HS_URL: url, HS_USER: user, HS_PASSWORD: password, HS_STREAM: stream } = process.env;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

async function post(path, body) {
  const res = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path} ${res.status} ${JSON.stringify(json)}`);
  return json;
}

let tokens;
try {
  tokens = await post("/api/v1/auth/login", { username: user, password });
} catch (e) {
  out({ type: "error", message: String(e) });
  process.exit(1);
}
out({ type: "login", role: tokens.user.role });

let connects = 0;
let subscribed = 0;
let updates = 0;
const socket = io(url, {
  auth: (cb) => cb({ token: tokens.accessToken }),
  reconnectionDelay: 200,
  reconnectionDelayMax: 1000,
  transports: ["websocket"],
});
socket.on("connect", async () => {
  out({ type: "connect", n: ++connects });
  try {
    const ack = await socket.timeout(5000).emitWithAck("subscribe", { streamId: stream, channels: ["detections"] });
    out({ type: "subscribed", n: ++subscribed, ack });
  } catch (e) {
    out({ type: "error", message: `subscribe: ${e}` });
  }
});
socket.on("disconnect", async (reason) => {
  out({ type: "disconnect", reason });
  if (reason === "io server disconnect") {
    tokens = await post("/api/v1/auth/refresh", { refreshToken: tokens.refreshToken });
    socket.connect();
  }
});
socket.on("connect_error", (e) => out({ type: "connect_error", message: e.message }));
socket.on("detection:update", (p) => {
  const boxes = p.frames.flatMap((f) => f.boxes);
  out({
    type: "detections",
    n: ++updates,
    connection: connects,
    streamId: p.streamId,
    sequence: p.sequence,
    frames: p.frames.length,
    boxes: boxes.length,
    // A box is a horse box when it has a size inside the frame and a confidence; a box the
    // tracker interpolated over a frame the detector missed has confidence 0 and a track.
    valid: boxes.every(
      (b) =>
        b.w > 0 &&
        b.h > 0 &&
        (b.interpolated
          ? b.confidence === 0 && b.trackId != null
          : b.confidence > 0 && b.confidence <= 1),
    ),
    interpolated: boxes.filter((b) => b.interpolated).length,
    horses: [...new Set(boxes.map((b) => b.horse).filter(Boolean))].sort(),
    tracks: [...new Set(boxes.map((b) => b.trackId).filter((t) => t != null))].sort((a, b) => a - b),
  });
});

const deadline = setTimeout(() => {
  out({ type: "error", message: "client timed out" });
  process.exit(2);
}, 600_000);
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "quit") {
    clearTimeout(deadline);
    socket.close();
    out({ type: "done" });
    setTimeout(() => process.exit(0), 50);
  }
});
