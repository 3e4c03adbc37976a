// The REST client: login/refresh (tokens kept in sessionStorage), JSON calls with the bearer
// token, one transparent refresh when an access token has expired, and the API's error body.

export interface User {
  id: number;
  username: string;
  role: string;
  permissions: string[];
}

interface Session {
  access: string;
  refresh: string;
  user: User;
}

export interface Stream {
  id: string;
  name: string;
  sourceUrl: string;
  sourceKind: string;
  status: string;
  enabled: boolean;
  hasCredentials: boolean;
  zones: { name: string; polygon: [number, number][] }[];
  alertRules: AlertRules;
}

/** The alert rules the dataflow applies to a stream's horses; `null` turns a timed rule off. */
export interface AlertRules {
  no_movement_s: number | null;
  lying_down_s: number | null;
  zone_exit: boolean;
}

export interface OverlayBox {
  x: number;
  y: number;
  w: number;
  h: number;
  confidence: number;
  trackId: number | null;
  horseId?: number | null;
  horse: string | null;
  /** The pose, `[x, y, score]` per AP-10K keypoint in source pixels; empty without pose. */
  keypoints?: [number, number, number][];
  /** Not found by the detector: the track's box interpolated over a frame it was missed in. */
  interpolated?: boolean;
}

export interface OverlayFrame {
  ptsUs: number;
  boxes: OverlayBox[];
}

export interface Horse {
  id: number;
  streamId: string;
  displayName: string;
  firstSeen: string;
  lastSeen: string;
  trackIds: number[];
}

export interface HorseProfile {
  horse: Horse;
  /** Over the horse's whole history, per speed unit (kept by the dataflow). */
  totals?: {
    unit: string;
    windows: number;
    distance: number;
    seconds: Record<string, number>;
    through: string;
  }[];
  /** Over the newest 1000 gait windows. */
  aggregates: {
    unit: string;
    windows: number;
    totalDistance: number;
    meanSpeed: number;
    maxSpeed: number;
    meanStrideHz: number | null;
    gaitWindows: Record<string, number>;
  }[];
  gait: {
    time: string;
    trackId: number;
    speed: number;
    unit: string;
    gaitClass: string;
    strideHz: number | null;
    /** From pose keypoints, when the stream runs a pose model. */
    pose?: GaitPose | null;
  }[];
}

/** Gait metrics of one window from pose keypoints. */
export interface GaitPose {
  samples: number;
  hoofStrideHz: number | null;
  hoofConfidence: number;
  /** Left fore, right fore, left hind, right hind: the angle at the elbow / knee keypoint. */
  joints: { limb: string; meanDeg: number | null; romDeg: number | null; samples: number }[];
  /** Signed symmetry index of the range of motion, percent (positive: the left moves more). */
  symmetryFore: number | null;
  symmetryHind: number | null;
}

export interface Alert {
  id: number;
  time: string;
  streamId: string;
  horseId: number | null;
  kind: string;
  severity: string;
  message: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
}

export interface Model {
  name: string;
  task: string;
  installed: boolean;
  streams: string[];
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

const KEY = "horsestream.session";

export class Api {
  private session: Session | null;
  private refreshing: Promise<void> | null = null;
  onSession: (user: User | null) => void = () => {};

  constructor() {
    const saved = sessionStorage.getItem(KEY);
    this.session = saved ? (JSON.parse(saved) as Session) : null;
  }

  get user(): User | null {
    return this.session?.user ?? null;
  }

  /** The current access token (read at every socket (re)connection). */
  get accessToken(): string {
    return this.session?.access ?? "";
  }

  can(permission: string): boolean {
    const perms = this.session?.user.permissions ?? [];
    const resource = permission.split(":")[0];
    return perms.some((p) => p === "*" || p === permission || p === `${resource}:*`);
  }

  private store(s: Session | null) {
    this.session = s;
    if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
    else sessionStorage.removeItem(KEY);
    this.onSession(s?.user ?? null);
  }

  async login(username: string, password: string): Promise<void> {
    const r = await this.raw("POST", "/api/v1/auth/login", { username, password }, false);
    this.store({ access: r.accessToken, refresh: r.refreshToken, user: r.user });
  }

  logout() {
    this.store(null);
  }

  /** New tokens from the refresh token; one refresh at a time, shared by concurrent callers. */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        const s = this.session;
        if (!s) throw new ApiError(401, "unauthorized", "not logged in");
        try {
          const r = await this.raw("POST", "/api/v1/auth/refresh", { refreshToken: s.refresh }, false);
          this.store({ access: r.accessToken, refresh: r.refreshToken, user: s.user });
        } catch (e) {
          if (e instanceof ApiError && e.status === 401) this.store(null);
          throw e;
        }
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return await this.raw(method, path, body, true);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && this.session) {
        await this.refresh();
        return await this.raw(method, path, body, true);
      }
      throw e;
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private async raw(method: string, path: string, body: unknown, auth: boolean): Promise<any> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (auth && this.session) headers.authorization = `Bearer ${this.session.access}`;
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const err = json?.error ?? { code: "http", message: res.statusText };
      throw new ApiError(res.status, err.code, err.message);
    }
    return json;
  }

  streams = () => this.call<Stream[]>("GET", "/api/v1/streams");
  addStream = (s: { id: string; name: string; sourceUrl: string; sourceKind: string }) =>
    this.call<Stream>("POST", "/api/v1/streams", s);
  start = (id: string) => this.call<Stream>("POST", `/api/v1/streams/${encodeURIComponent(id)}/start`);
  stop = (id: string) => this.call<Stream>("POST", `/api/v1/streams/${encodeURIComponent(id)}/stop`);
  stream = (id: string) => this.call<Stream>("GET", `/api/v1/streams/${encodeURIComponent(id)}`);
  setAlertRules = (id: string, alertRules: AlertRules) =>
    this.call<Stream>("PATCH", `/api/v1/streams/${encodeURIComponent(id)}`, { alertRules });
  overlay = (id: string, fromPts: number, toPts: number) =>
    this.call<{ frames: OverlayFrame[]; truncated: boolean }>(
      "GET",
      `/api/v1/streams/${encodeURIComponent(id)}/overlay?fromPts=${fromPts}&toPts=${toPts}`,
    );
  horses = (id: string) => this.call<Horse[]>("GET", `/api/v1/streams/${encodeURIComponent(id)}/horses`);
  horse = (id: number) => this.call<HorseProfile>("GET", `/api/v1/horses/${id}`);
  renameHorse = (id: number, displayName: string) =>
    this.call<Horse>("PATCH", `/api/v1/horses/${id}`, { displayName });
  alerts = (stream: string) =>
    this.call<Alert[]>("GET", `/api/v1/alerts?stream=${encodeURIComponent(stream)}&limit=50`);
  acknowledge = (id: number) => this.call<Alert>("POST", `/api/v1/alerts/${id}/acknowledge`);
  models = () => this.call<Model[]>("GET", "/api/v1/models");
  activateModel = (stream: string, model: string) =>
    this.call<unknown>("PUT", `/api/v1/streams/${encodeURIComponent(stream)}/model`, { model });
}

export const api = new Api();
