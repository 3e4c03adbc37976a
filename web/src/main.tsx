// The horsestream web client: login, the stream grid with live status, adding, starting and
// stopping streams, and for the selected stream the processed-playback player with its overlay,
// metrics, alerts, horses and model selector. Served by the API at `/`.

import { useEffect, useMemo, useState } from "react";
import { createRoot } from "react-dom/client";
import { api, ApiError, type Stream, type User } from "./api";
import { Live } from "./live";
import { Player } from "./components/Player";
import { Alerts, AlertSettings, ConnectionStatus, Horses, Metrics, ModelSelector } from "./components/Panels";

function Login() {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  return (
    <form
      className="login"
      onSubmit={(e) => {
        e.preventDefault();
        api.login(username, password).catch((err) => setError(err.message));
      }}
    >
      <h1>horsestream</h1>
      <input placeholder="username" name="username" value={username} onChange={(e) => setUsername(e.target.value)} />
      <input
        placeholder="password"
        name="password"
        type="password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
      />
      <button type="submit">Log in</button>
      {error && <p className="error">{error}</p>}
    </form>
  );
}

function AddStream({ onAdded }: { onAdded: (s: Stream) => void }) {
  const [id, setId] = useState("");
  const [url, setUrl] = useState("");
  const [error, setError] = useState<string | null>(null);
  const kind = (u: string) => {
    const scheme = u.split(":")[0].toLowerCase();
    if (scheme === "rtsp" || scheme === "rtsps") return "rtsp";
    if (scheme === "rtmp") return "rtmp";
    if (u.includes(".m3u8")) return "hls";
    if (scheme === "http" || scheme === "https") return u.includes("youtu") ? "youtube" : "http";
    return "file";
  };
  return (
    <form
      className="add-stream"
      data-testid="add-stream"
      onSubmit={(e) => {
        e.preventDefault();
        api
          .addStream({ id, name: id, sourceUrl: url, sourceKind: kind(url) })
          .then((s) => {
            setId("");
            setUrl("");
            setError(null);
            onAdded(s);
          })
          .catch((err) => setError(err.message));
      }}
    >
      <input placeholder="stream id" name="stream-id" value={id} onChange={(e) => setId(e.target.value)} />
      <input
        placeholder="rtsp://… or file:///…"
        name="stream-url"
        value={url}
        onChange={(e) => setUrl(e.target.value)}
      />
      <button type="submit">Add stream</button>
      {error && <p className="error">{error}</p>}
    </form>
  );
}

function StreamCard({
  s,
  selected,
  onSelect,
  onChanged,
  chunks,
}: {
  s: Stream;
  selected: boolean;
  onSelect: () => void;
  onChanged: (s: Stream) => void;
  chunks: number;
}) {
  const [error, setError] = useState<string | null>(null);
  const act = (f: (id: string) => Promise<Stream>) => (e: React.MouseEvent) => {
    e.stopPropagation();
    f(s.id).then(onChanged, (err) => setError(err.message));
  };
  return (
    <div
      className={`card ${selected ? "selected" : ""}`}
      onClick={onSelect}
      data-testid={`stream-${s.id}`}
      data-status={s.status}
    >
      <div className="card-title">{s.name}</div>
      <div className="muted small">{s.sourceUrl}</div>
      <div>
        <span className={`status status-${s.status}`}>{s.status}</span> · {chunks} chunks live
      </div>
      {api.can("streams:control") && (
        <div className="actions">
          {s.enabled ? (
            <button onClick={act(api.stop)}>Stop</button>
          ) : (
            <button onClick={act(api.start)}>Start</button>
          )}
        </div>
      )}
      {error && <p className="error">{error}</p>}
    </div>
  );
}

function Dashboard({ user }: { user: User }) {
  const live = useMemo(() => new Live(), []);
  useEffect(() => () => live.close(), [live]);
  const [streams, setStreams] = useState<Stream[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [chunks, setChunks] = useState<Record<string, number>>({});
  const [error, setError] = useState<string | null>(null);

  const load = () =>
    api.streams().then(
      (list) => {
        setStreams(list);
        for (const s of list) live.subscribe(s.id);
      },
      (e) => setError(e instanceof ApiError ? e.message : String(e)),
    );
  useEffect(() => {
    void load();
    const t = window.setInterval(load, 10_000);
    return () => window.clearInterval(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(
    () =>
      live.on((name, p) => {
        if (name === "chunk:processed") setChunks((c) => ({ ...c, [p.streamId]: (c[p.streamId] ?? 0) + 1 }));
        if (name === "stream:status")
          setStreams((list) => list.map((s) => (s.id === p.streamId ? { ...s, status: p.state } : s)));
      }),
    [live],
  );
  const replace = (s: Stream) => setStreams((list) => list.map((x) => (x.id === s.id ? s : x)));

  return (
    <div className="app">
      <header>
        <b>horsestream</b>
        <ConnectionStatus live={live} />
        <span className="grow" />
        <span>
          {user.username} ({user.role})
        </span>
        <button onClick={() => api.logout()}>Log out</button>
      </header>
      {error && <p className="error">{error}</p>}
      <div className="layout">
        <aside>
          <div className="grid" data-testid="stream-grid">
            {streams.map((s) => (
              <StreamCard
                key={s.id}
                s={s}
                selected={s.id === selected}
                onSelect={() => setSelected(s.id)}
                onChanged={replace}
                chunks={chunks[s.id] ?? 0}
              />
            ))}
          </div>
          {api.can("streams:write") && (
            <AddStream
              onAdded={(s) => {
                setStreams((l) => [...l, s]);
                live.subscribe(s.id);
                setSelected(s.id);
              }}
            />
          )}
        </aside>
        <main>
          {selected ? (
            <>
              <h2>{selected}</h2>
              <Player streamId={selected} live={live} />
              <div className="panels">
                <Metrics streamId={selected} live={live} />
                <Horses streamId={selected} live={live} />
                <Alerts streamId={selected} live={live} />
                <AlertSettings streamId={selected} />
                <ModelSelector streamId={selected} />
              </div>
            </>
          ) : (
            <p className="muted">Select a stream.</p>
          )}
        </main>
      </div>
    </div>
  );
}

function App() {
  const [user, setUser] = useState<User | null>(api.user);
  useEffect(() => {
    api.onSession = setUser;
  }, []);
  return user ? <Dashboard key={user.username} user={user} /> : <Login />;
}

createRoot(document.getElementById("root")!).render(<App />);
