// The side panels of a selected stream: connection status, alerts (list + live + acknowledge),
// alert settings (the stream's rules and thresholds),
// metrics (live gait windows and chunk throughput), horses with their profile and rename, and
// the model selector.

import { useEffect, useState } from "react";
import { api, type Alert, type AlertRules, type HorseProfile, type Horse, type Model } from "../api";
import type { ConnInfo, Live, Payload } from "../live";

export function ConnectionStatus({ live }: { live: Live }) {
  const [info, setInfo] = useState<ConnInfo>(live.info);
  useEffect(() => live.onState(setInfo), [live]);
  return (
    <span className={`conn conn-${info.state}`} data-testid="connection" data-state={info.state}>
      ● {info.state}
      {info.reconnects > 0 && ` (reconnected ${info.reconnects}×)`}
      {info.state !== "connected" && info.lastError && <small> — {info.lastError}</small>}
    </span>
  );
}

function useLive(live: Live, streamId: string, names: string[], f: (name: string, p: Payload) => void) {
  useEffect(
    () =>
      live.on((name, p) => {
        if (p.streamId === streamId && names.includes(name)) f(name, p);
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [live, streamId],
  );
}

export function Alerts({ streamId, live }: { streamId: string; live: Live }) {
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    api
      .alerts(streamId)
      .then((a) => {
        setAlerts(a);
        setError(null);
      })
      .catch((e) => setError(e.message));
  useEffect(() => {
    void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [streamId]);
  useLive(live, streamId, ["alert:raised"], () => void load());
  if (!api.can("analytics:read")) return null;
  return (
    <section className="panel">
      <h3>Alerts</h3>
      {error && <p className="error">{error}</p>}
      {alerts.length === 0 && <p className="muted">none</p>}
      <ul className="alerts">
        {alerts.map((a) => (
          <li key={a.id} className={`sev-${a.severity}`}>
            <b>{a.kind}</b> {a.message}
            <small> {new Date(a.time).toLocaleTimeString()}</small>
            {a.acknowledgedAt ? (
              <small> ✓ {a.acknowledgedBy}</small>
            ) : (
              api.can("analytics:write") && (
                <button onClick={() => api.acknowledge(a.id).then(load, (e) => setError(e.message))}>
                  acknowledge
                </button>
              )
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** One timed rule's row: on/off and its threshold in `unit`s (the API takes seconds). */
function TimedRule(props: {
  label: string;
  name: string;
  unit: string;
  perUnit: number;
  value: number | null;
  /** Seconds to start from when the rule is turned on. */
  initial: number;
  disabled: boolean;
  onChange: (v: number | null) => void;
}) {
  const { label, name, unit, perUnit, value, initial, disabled, onChange } = props;
  return (
    <label>
      <input
        type="checkbox"
        name={`${name}-on`}
        checked={value !== null}
        disabled={disabled}
        onChange={(e) => onChange(e.target.checked ? initial : null)}
      />{" "}
      {label} after{" "}
      <input
        type="number"
        name={name}
        min={1}
        step={1}
        style={{ width: "5em" }}
        value={value === null ? "" : Math.round((value / perUnit) * 10) / 10}
        disabled={disabled || value === null}
        onChange={(e) => onChange(Number(e.target.value) * perUnit)}
      />{" "}
      {unit}
    </label>
  );
}

export function AlertSettings({ streamId }: { streamId: string }) {
  const [rules, setRules] = useState<AlertRules | null>(null);
  const [zones, setZones] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    setRules(null);
    setSaved(false);
    api.stream(streamId).then(
      (s) => {
        setRules(s.alertRules);
        setZones(s.zones.length);
      },
      (e) => setError(e.message),
    );
  }, [streamId]);
  if (!api.can("streams:read") || !rules) return null;
  const readOnly = !api.can("streams:write");
  const change = (r: AlertRules) => {
    setRules(r);
    setSaved(false);
  };
  return (
    <section className="panel" data-testid="alert-settings" data-saved={saved}>
      <h3>Alert settings</h3>
      {error && <p className="error">{error}</p>}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          api.setAlertRules(streamId, rules).then(
            (s) => {
              setRules(s.alertRules);
              setError(null);
              setSaved(true);
            },
            (err) => setError(err.message),
          );
        }}
      >
        <TimedRule
          label="no movement"
          name="no-movement-min"
          unit="min"
          perUnit={60}
          value={rules.no_movement_s}
          initial={600}
          disabled={readOnly}
          onChange={(v) => change({ ...rules, no_movement_s: v })}
        />
        <TimedRule
          label="lying down"
          name="lying-down-s"
          unit="s"
          perUnit={1}
          value={rules.lying_down_s}
          initial={30}
          disabled={readOnly}
          onChange={(v) => change({ ...rules, lying_down_s: v })}
        />
        <label>
          <input
            type="checkbox"
            name="zone-exit"
            checked={rules.zone_exit}
            disabled={readOnly}
            onChange={(e) => change({ ...rules, zone_exit: e.target.checked })}
          />{" "}
          leaving the zones <small className="muted">({zones} configured)</small>
        </label>
        {!readOnly && <button type="submit">save</button>}
        {saved && <small> saved</small>}
      </form>
    </section>
  );
}

interface Gait {
  number: number;
  speed: number;
  unit: string;
  gaitClass: string;
  strideHz: number | null;
}

export function Metrics({ streamId, live }: { streamId: string; live: Live }) {
  const [chunks, setChunks] = useState<{ n: number; frames: number; detections: number; lagMs: number | null }>({
    n: 0,
    frames: 0,
    detections: 0,
    lagMs: null,
  });
  const [gait, setGait] = useState<Record<number, Gait>>({});
  useEffect(() => {
    setChunks({ n: 0, frames: 0, detections: 0, lagMs: null });
    setGait({});
  }, [streamId]);
  useLive(live, streamId, ["chunk:processed", "metrics:update"], (name, p) => {
    if (name === "chunk:processed") {
      setChunks((c) => ({
        n: c.n + 1,
        frames: c.frames + p.frames,
        detections: c.detections + p.detections,
        lagMs: Math.round(Date.now() - p.emittedAtUs / 1000),
      }));
    } else {
      setGait((g) => ({ ...g, [p.number ?? p.trackId]: p }));
    }
  });
  return (
    <section className="panel" data-testid="metrics">
      <h3>Metrics</h3>
      <p>
        chunks {chunks.n} · frames {chunks.frames} · detections {chunks.detections}
        {chunks.lagMs != null && ` · event delivered ${chunks.lagMs} ms after publication`}
      </p>
      <table>
        <tbody>
          {Object.entries(gait).map(([k, g]) => (
            <tr key={k}>
              <td>Horse_{k}</td>
              <td>
                {g.speed.toFixed(2)} {g.unit}
              </td>
              <td>{g.gaitClass}</td>
              <td>{g.strideHz != null ? `${g.strideHz.toFixed(2)} Hz` : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function Horses({ streamId, live }: { streamId: string; live: Live }) {
  const [horses, setHorses] = useState<Horse[]>([]);
  const [profile, setProfile] = useState<HorseProfile | null>(null);
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const load = () => api.horses(streamId).then(setHorses, (e) => setError(e.message));
  useEffect(() => {
    setProfile(null);
    void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [streamId]);
  useLive(live, streamId, ["horse:update"], () => void load());
  const open = (id: number) =>
    api.horse(id).then((p) => {
      setProfile(p);
      setName(p.horse.displayName);
    }, (e) => setError(e.message));
  return (
    <section className="panel" data-testid="horses">
      <h3>Horses</h3>
      {error && <p className="error">{error}</p>}
      <div className="chips">
        {horses.map((h) => (
          <button key={h.id} className={profile?.horse.id === h.id ? "active" : ""} onClick={() => open(h.id)}>
            {h.displayName}
          </button>
        ))}
      </div>
      {profile && (
        <div className="profile">
          <h4>{profile.horse.displayName}</h4>
          <p className="muted">
            seen {new Date(profile.horse.firstSeen).toLocaleString()} –{" "}
            {new Date(profile.horse.lastSeen).toLocaleTimeString()} · tracks {profile.horse.trackIds.join(", ")}
          </p>
          {(profile.totals ?? []).map((t) => (
            <p key={`total-${t.unit}`} data-testid="horse-totals">
              in all: {t.distance.toFixed(1)} {t.unit.split("_per_")[0]} ·{" "}
              {Object.entries(t.seconds)
                .map(([g, s]) => `${g} ${s.toFixed(0)} s`)
                .join(", ")}
            </p>
          ))}
          {profile.aggregates.map((a) => (
            <p key={a.unit}>
              {a.windows} gait windows · {a.totalDistance.toFixed(1)} {a.unit.split("/")[0]} · mean{" "}
              {a.meanSpeed.toFixed(2)} / max {a.maxSpeed.toFixed(2)} {a.unit} ·{" "}
              {Object.entries(a.gaitWindows)
                .map(([g, n]) => `${g} ${n}`)
                .join(", ")}
            </p>
          ))}
          <PoseSummary gait={profile.gait} />
          {api.can("horses:write") && (
            <form
              onSubmit={(e) => {
                e.preventDefault();
                api.renameHorse(profile.horse.id, name).then(() => {
                  void open(profile.horse.id);
                  void load();
                }, (err) => setError(err.message));
              }}
            >
              <input value={name} onChange={(e) => setName(e.target.value)} aria-label="horse name" />
              <button>rename</button>
            </form>
          )}
        </div>
      )}
    </section>
  );
}

/** The newest gait window that has pose metrics: hoof stride, joint angles, symmetry. */
function PoseSummary({ gait }: { gait: HorseProfile["gait"] }) {
  const newest = gait
    .filter((g) => g.pose)
    .reduce<HorseProfile["gait"][number] | undefined>(
      (a, b) => (a && Date.parse(a.time) >= Date.parse(b.time) ? a : b),
      undefined,
    );
  const pose = newest?.pose;
  if (!newest || !pose) return null;
  const deg = (v: number | null) => (v == null ? "–" : `${v.toFixed(0)}°`);
  const pct = (v: number | null) => (v == null ? "–" : `${v > 0 ? "+" : ""}${v.toFixed(0)} %`);
  return (
    <p data-testid="horse-pose">
      pose ({new Date(newest.time).toLocaleTimeString()}):{" "}
      {pose.hoofStrideHz != null ? `hoof stride ${pose.hoofStrideHz.toFixed(2)} Hz · ` : ""}
      {pose.joints
        .map((j) => `${j.limb.replace("_", " ")} ${deg(j.meanDeg)} (range ${deg(j.romDeg)})`)
        .join(", ")}
      {" · "}symmetry fore {pct(pose.symmetryFore)}, hind {pct(pose.symmetryHind)}
    </p>
  );
}

export function ModelSelector({ streamId }: { streamId: string }) {
  const [models, setModels] = useState<Model[]>([]);
  const [error, setError] = useState<string | null>(null);
  const load = () => api.models().then(setModels, (e) => setError(e.message));
  useEffect(() => {
    if (api.can("models:read")) void load();
  }, [streamId]);
  if (!api.can("models:read")) return null;
  const tasks = [...new Set(models.map((m) => m.task))];
  return (
    <section className="panel">
      <h3>Models</h3>
      {error && <p className="error">{error}</p>}
      {tasks.map((task) => {
        const choices = models.filter((m) => m.task === task);
        const current = choices.find((m) => m.streams.includes(streamId))?.name ?? "";
        return (
          <label key={task}>
            {task}{" "}
            <select
              value={current}
              disabled={!api.can("models:write")}
              onChange={(e) => api.activateModel(streamId, e.target.value).then(load, (err) => setError(err.message))}
            >
              <option value="">default</option>
              {choices.map((m) => (
                <option key={m.name} value={m.name} disabled={!m.installed}>
                  {m.name}
                  {m.installed ? "" : " (not installed)"}
                </option>
              ))}
            </select>
          </label>
        );
      })}
    </section>
  );
}
