// The processed-playback player: the stream's HLS through hls.js (bearer token on every
// request), a canvas over the video drawing the boxes, horse names and (for a stream running a
// pose model) AP-10K skeletons of the frame on screen,
// matched by PTS: the segments' MPEG-TS timestamps are the frames' PTS, so the PTS on screen is
// `currentTime + initPTS − fragment start`. Boxes come from live `detection:update` events and,
// for the stretch being played, from `GET /streams/{id}/overlay`. Plays ~24 s behind the live
// edge (the analysis runs 10–30 s behind the video); a finished file stream loops. Below it, a
// timeline of the stretch buffered: the processed chunks (`chunk:processed`) and the playhead;
// a click seeks.

import Hls from "hls.js";
import { useEffect, useRef, useState } from "react";
import { api, type OverlayFrame } from "../api";
import type { Live } from "../live";
import { drawSkeleton } from "../skeleton";

const COLOURS = ["#ff4d4f", "#40a9ff", "#73d13d", "#ffc53d", "#b37feb", "#36cfc9", "#ff85c0", "#ffa940"];
const WINDOW_US = 2_000_000;

export function Player({ streamId, live }: { streamId: string; live: Live }) {
  const video = useRef<HTMLVideoElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [status, setStatus] = useState("loading playlist…");
  const [chunks, setChunks] = useState<{ start: number; end: number; detections: number }[]>([]);
  const [timeline, setTimeline] = useState({ pts: 0, end: 0, offset: 0 });

  useEffect(() => {
    setChunks([]);
    return live.on((name, p) => {
      if (name === "chunk:processed" && p.streamId === streamId)
        setChunks((c) => [...c.slice(-500), { start: p.startPtsUs, end: p.endPtsUs, detections: p.detections }]);
    });
  }, [streamId, live]);

  useEffect(() => {
    const v = video.current!;
    const c = canvas.current!;
    let hls: Hls | null = null;
    let ptsOffset = 0; // seconds: PTS = currentTime + ptsOffset
    let stopped = false;
    let retry: number | undefined;
    const fetched = new Map<number, number>(); // overlay window → when fetched (ms)

    const start = () => {
      hls?.destroy();
      hls = new Hls({
        xhrSetup: (xhr) => xhr.setRequestHeader("Authorization", `Bearer ${api.accessToken}`),
        liveSyncDuration: 24,
        liveMaxLatencyDuration: 90,
        manifestLoadingMaxRetry: 2,
      });
      hls.on(Hls.Events.INIT_PTS_FOUND, (_e, d) => {
        ptsOffset = d.initPTS / d.timescale - d.frag.start;
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        setStatus("playing");
        v.play().catch(() => setStatus("press play"));
      });
      hls.on(Hls.Events.ERROR, (_e, d) => {
        if (!d.fatal) return;
        // No playlist yet (stream not started, or ingest just began): try again shortly.
        setStatus(`waiting for video (${d.details})`);
        hls?.destroy();
        hls = null;
        if (!stopped) retry = window.setTimeout(start, 2000);
      });
      hls.loadSource(`/api/v1/streams/${encodeURIComponent(streamId)}/hls/index.m3u8`);
      hls.attachMedia(v);
    };
    start();

    const onEnded = () => {
      v.currentTime = 0;
      void v.play();
    };
    v.addEventListener("ended", onEnded);

    // Fill the overlay cache for the stretch around the playhead (windows of 2 s).
    const fill = async () => {
      if (stopped || v.readyState < 2) return;
      const pts = Math.max(0, (v.currentTime + ptsOffset) * 1e6);
      const first = Math.floor(pts / WINDOW_US);
      const now = Date.now();
      for (let w = first; w < first + 4; w++) {
        const when = fetched.get(w);
        if (when !== undefined && now - when < 3000) continue;
        fetched.set(w, now);
        try {
          const r = await api.overlay(streamId, w * WINDOW_US, (w + 1) * WINDOW_US);
          live.overlay.add(streamId, r.frames);
          // A complete window does not change any more.
          if (r.frames.length >= 10) fetched.set(w, Number.MAX_SAFE_INTEGER);
        } catch {
          fetched.delete(w);
        }
      }
    };
    const filler = window.setInterval(() => {
      void fill();
      const end = Number.isFinite(v.duration) ? v.duration : v.seekable.length ? v.seekable.end(0) : 0;
      setTimeline({ pts: (v.currentTime + ptsOffset) * 1e6, end: (end + ptsOffset) * 1e6, offset: ptsOffset });
    }, 1000);

    let raf = 0;
    const draw = () => {
      raf = requestAnimationFrame(draw);
      const w = c.clientWidth;
      const h = c.clientHeight;
      if (c.width !== w || c.height !== h) {
        c.width = w;
        c.height = h;
      }
      const ctx = c.getContext("2d")!;
      ctx.clearRect(0, 0, w, h);
      if (!v.videoWidth || v.readyState < 2) return;
      const ptsUs = Math.round((v.currentTime + ptsOffset) * 1e6);
      const frame: OverlayFrame | null = live.overlay.at(streamId, ptsUs);
      c.dataset.pts = String(ptsUs);
      c.dataset.boxes = String(frame?.boxes.length ?? 0);
      // Boxes the detector found (an interpolated one has no pose).
      c.dataset.detected = String(frame?.boxes.filter((b) => !b.interpolated).length ?? 0);
      c.dataset.keypoints = "0";
      if (!frame) return;
      // The video is letterboxed inside the element (object-fit: contain).
      const scale = Math.min(w / v.videoWidth, h / v.videoHeight);
      const ox = (w - v.videoWidth * scale) / 2;
      const oy = (h - v.videoHeight * scale) / 2;
      ctx.lineWidth = 2;
      ctx.font = "bold 13px sans-serif";
      const at = (px: number, py: number): [number, number] => [ox + px * scale, oy + py * scale];
      let keypoints = 0;
      for (const b of frame.boxes) {
        const colour = COLOURS[(b.trackId ?? 0) % COLOURS.length];
        const x = ox + b.x * scale;
        const y = oy + b.y * scale;
        ctx.strokeStyle = colour;
        // An interpolated box (the detector missed the horse in this frame) is dashed.
        ctx.setLineDash(b.interpolated ? [6, 4] : []);
        ctx.strokeRect(x, y, b.w * scale, b.h * scale);
        ctx.setLineDash([]);
        const label = `${b.horse ?? "horse"}${b.trackId != null ? ` #${b.trackId}` : ""}`;
        const tw = ctx.measureText(label).width + 6;
        ctx.fillStyle = colour;
        ctx.fillRect(x, Math.max(0, y - 17), tw, 17);
        ctx.fillStyle = "#000";
        ctx.fillText(label, x + 3, Math.max(12, y - 4));
        keypoints += drawSkeleton(ctx, b.keypoints, at, colour);
      }
      c.dataset.keypoints = String(keypoints);
    };
    raf = requestAnimationFrame(draw);

    return () => {
      stopped = true;
      window.clearTimeout(retry);
      window.clearInterval(filler);
      cancelAnimationFrame(raf);
      v.removeEventListener("ended", onEnded);
      hls?.destroy();
    };
  }, [streamId, live]);

  const span = Math.max(timeline.end, ...chunks.map((c) => c.end), 1);
  const pct = (us: number) => `${Math.min(100, Math.max(0, (us / span) * 100))}%`;
  return (
    <>
      <div className="player">
        <video ref={video} muted playsInline controls data-testid="video" />
        <canvas ref={canvas} className="overlay" data-testid="overlay" />
        <div className="player-status">{status}</div>
      </div>
      <div
        className="timeline"
        data-testid="timeline"
        title="processed chunks; click to seek"
        onClick={(e) => {
          const r = e.currentTarget.getBoundingClientRect();
          const us = ((e.clientX - r.left) / r.width) * span;
          if (video.current) video.current.currentTime = Math.max(0, us / 1e6 - timeline.offset);
        }}
      >
        {chunks.map((c, i) => (
          <span
            key={i}
            className="chunk"
            style={{ left: pct(c.start), width: `calc(${pct(c.end)} - ${pct(c.start)})` }}
            title={`${(c.start / 1e6).toFixed(0)}–${(c.end / 1e6).toFixed(0)} s: ${c.detections} detections`}
          />
        ))}
        <span className="playhead" style={{ left: pct(timeline.pts) }} />
      </div>
    </>
  );
}
