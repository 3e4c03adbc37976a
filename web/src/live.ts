// The live connection to the gateway over the official socket.io-client: the access token on
// every (re)connection, the stream subscriptions replayed after each reconnect, a token refresh
// when the server ends the session (token expiry), the connection state for the status badge,
// and the overlay frames of `detection:update` events kept by PTS for the player.

import { io, type Socket } from "socket.io-client";
import { api, type OverlayFrame } from "./api";

export type ConnState = "connecting" | "connected" | "reconnecting" | "offline";

export interface ConnInfo {
  state: ConnState;
  /** Reconnections since the page loaded. */
  reconnects: number;
  /** Subscriptions acknowledged on the current connection. */
  subscribed: number;
  lastError: string | null;
}

export const EVENTS = [
  "detection:update",
  "chunk:processed",
  "stream:status",
  "horse:update",
  "metrics:update",
  "alert:raised",
] as const;
export type EventName = (typeof EVENTS)[number];
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Payload = any;
type Listener = (name: EventName, payload: Payload) => void;

/** Overlay frames of each stream by PTS (µs), from live events and from the REST overlay. */
export class OverlayCache {
  private frames = new Map<string, Map<number, OverlayFrame>>();

  add(stream: string, frames: OverlayFrame[]) {
    let m = this.frames.get(stream);
    if (!m) this.frames.set(stream, (m = new Map()));
    for (const f of frames) m.set(f.ptsUs, f);
    // Keep the newest ~10 minutes at 10 fps.
    if (m.size > 6000) {
      const keys = [...m.keys()].sort((a, b) => a - b);
      for (const k of keys.slice(0, m.size - 6000)) m.delete(k);
    }
  }

  /** The frame nearest to `ptsUs` within `toleranceUs`, if any. */
  at(stream: string, ptsUs: number, toleranceUs = 60_000): OverlayFrame | null {
    const m = this.frames.get(stream);
    if (!m) return null;
    let best: OverlayFrame | null = null;
    // Frames sit on a 10–30 fps grid: look at the few keys around ptsUs.
    for (const f of m.values()) {
      const d = Math.abs(f.ptsUs - ptsUs);
      if (d <= toleranceUs && (!best || d < Math.abs(best.ptsUs - ptsUs))) best = f;
    }
    return best;
  }

  count(stream: string): number {
    return this.frames.get(stream)?.size ?? 0;
  }
}

export class Live {
  readonly overlay = new OverlayCache();
  private socket: Socket;
  private streams = new Set<string>();
  /** Horse names by `stream/number`, from `horse:update`. */
  private names = new Map<string, string>();
  private listeners = new Set<Listener>();
  private stateListeners = new Set<(c: ConnInfo) => void>();
  info: ConnInfo = { state: "connecting", reconnects: 0, subscribed: 0, lastError: null };

  constructor(url = window.location.origin) {
    this.socket = io(url, {
      // A function: every (re)connection presents the current (possibly refreshed) token.
      auth: (cb) => cb({ token: api.accessToken }),
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      transports: ["websocket", "polling"],
    });
    const s = this.socket;
    s.on("connect", () => {
      this.set({ state: "connected", subscribed: 0, lastError: null });
      for (const id of this.streams) void this.subscribeNow(id);
    });
    s.io.on("reconnect", () => this.set({ reconnects: this.info.reconnects + 1 }));
    s.io.on("reconnect_attempt", () => this.set({ state: "reconnecting" }));
    s.on("disconnect", async (reason) => {
      this.set({ state: reason === "io client disconnect" ? "offline" : "reconnecting", subscribed: 0 });
      if (reason === "io server disconnect") {
        // The server ended the session (token expired): refresh, then reconnect ourselves.
        await this.refreshAndConnect();
      }
    });
    s.on("connect_error", async (e) => {
      this.set({ lastError: e.message, state: "reconnecting" });
      if (!s.active) await this.refreshAndConnect();
    });
    for (const name of EVENTS) {
      s.on(name, (payload: Payload) => {
        if (name === "horse:update") this.names.set(`${payload.streamId}/${payload.number}`, payload.displayName);
        if (name === "detection:update") this.overlay.add(payload.streamId, this.named(payload));
        for (const l of this.listeners) l(name, payload);
      });
    }
  }

  /** A `detection:update`'s frames with each box's horse number replaced by its name. */
  private named(p: Payload): OverlayFrame[] {
    return p.frames.map((f: Payload) => ({
      ptsUs: f.ptsUs,
      boxes: f.boxes.map((b: Payload) => ({
        ...b,
        horse: b.horse == null ? null : (this.names.get(`${p.streamId}/${b.horse}`) ?? `Horse_${b.horse}`),
      })),
    }));
  }

  private async refreshAndConnect() {
    try {
      await api.refresh();
      this.socket.connect();
    } catch (e) {
      this.set({ state: "offline", lastError: String(e) });
    }
  }

  private set(p: Partial<ConnInfo>) {
    this.info = { ...this.info, ...p };
    for (const l of this.stateListeners) l(this.info);
  }

  private async subscribeNow(id: string) {
    try {
      const ack = await this.socket.timeout(5000).emitWithAck("subscribe", { streamId: id });
      if (ack?.ok) this.set({ subscribed: this.info.subscribed + 1 });
      else this.set({ lastError: ack?.error?.message ?? "subscribe refused" });
    } catch (e) {
      this.set({ lastError: String(e) });
    }
  }

  /** Subscribes to `id` now and after every reconnection. */
  subscribe(id: string) {
    if (this.streams.has(id)) return;
    this.streams.add(id);
    if (this.socket.connected) void this.subscribeNow(id);
  }

  on(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  onState(l: (c: ConnInfo) => void): () => void {
    this.stateListeners.add(l);
    l(this.info);
    return () => this.stateListeners.delete(l);
  }

  close() {
    this.socket.close();
  }
}
