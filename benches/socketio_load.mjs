// The client side of benches/socketio_load.rs: HS_CLIENTS official socket.io-clients (the web
// client's dependency, resolved from HS_WEB_DIR) connect to HS_URL with HS_TOKEN, subscribe to
// HS_STREAM, and record for every received event the time from its publication
// (`emittedAtUs`) to its receipt, in µs. Prints {"type":"ready"} once every client is
// subscribed; on stdin "end TOTAL" it waits until each client has TOTAL events (at most 10 s),
// then prints one JSON line with every latency (µs), the deliveries lost and the time of the
// last receipt, and exits. The harness runs several of these processes and merges them.
import { createRequire } from "node:module";
import readline from "node:readline";

const require = createRequire(process.env.HS_WEB_DIR + "/package.json");
const { io } = require("socket.io-client");

const n = Number(process.env.HS_CLIENTS ?? 1000);
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
const latencies = [];
const counts = new Array(n).fill(0);
let lastReceiptUs = 0;
const sockets = [];

await Promise.all(
  Array.from({ length: n }, (_, i) =>
    new Promise((resolve, reject) => {
      const s = io(process.env.HS_URL, {
        auth: { token: process.env.HS_TOKEN },
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
      });
      sockets.push(s);
      const record = (p) => {
        const t = nowUs();
        latencies.push(t - p.emittedAtUs);
        counts[i] += 1;
        lastReceiptUs = t;
      };
      s.on("chunk:processed", record);
      s.on("detection:update", record);
      s.on("connect_error", reject);
      s.on("connect", async () => {
        const ack = await s.timeout(30_000).emitWithAck("subscribe", {
          streamId: process.env.HS_STREAM,
          channels: ["chunks", "detections"],
        });
        if (ack.ok) resolve();
        else reject(new Error(JSON.stringify(ack)));
      });
    }),
  ),
);
process.stdout.write(JSON.stringify({ type: "ready", clients: n }) + "\n");

readline.createInterface({ input: process.stdin }).on("line", async (line) => {
  const [cmd, total] = line.trim().split(/\s+/);
  if (cmd !== "end") return;
  const want = Number(total);
  const deadline = Date.now() + 10_000;
  while (counts.some((c) => c < want) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  process.stdout.write(
    JSON.stringify({
      type: "result",
      lost: want * n - latencies.length,
      lastReceiptUs: Math.round(lastReceiptUs),
      latenciesUs: latencies.map(Math.round),
    }) + "\n",
    // Pipes are written asynchronously: exit once the line is out.
    () => process.exit(0),
  );
  for (const s of sockets) s.close();
});
