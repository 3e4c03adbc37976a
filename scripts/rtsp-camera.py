#!/usr/bin/python3
"""A test RTSP camera: GStreamer's RTSP server on rtsp://HOST:PORT/MOUNT.

Serves a live H.264 test pattern (default) or a video file played in a loop, optionally
behind basic auth. Prints "ready" on stdout once the port is listening; exits 0 on SIGTERM
or SIGINT, 2 if the port cannot be bound. Run it with Debian's /usr/bin/python3 (it has
`gi`); scripts/install-deps.sh installs the GStreamer packages it needs.

    /usr/bin/python3 scripts/rtsp-camera.py --port 18554                 # test pattern
    /usr/bin/python3 scripts/rtsp-camera.py --port 18554 --file in.mp4   # file, looped
    /usr/bin/python3 scripts/rtsp-camera.py --port 18554 --user u --password p
"""

import argparse
import os
import signal
import sys

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
except (ImportError, ValueError) as e:  # ValueError: typelib missing
    sys.exit(
        f"rtsp-camera: GStreamer RTSP server bindings missing ({e}); "
        "run scripts/install-deps.sh and use /usr/bin/python3"
    )


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mount", default="/cam", help="path of the stream (default /cam)")
    p.add_argument("--file", help="video file to serve in a loop (default: test pattern)")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--user", help="require basic auth with this user")
    p.add_argument("--password", default="", help="password for --user")
    a = p.parse_args()
    if not a.mount.startswith("/"):
        a.mount = "/" + a.mount
    return a


def encoder(fps):
    # A keyframe every second so a (re)connecting client starts decoding quickly.
    return (
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
    )


def pattern_launch(a):
    return (
        f"( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1 "
        f"! {encoder(a.fps)} )"
    )


def file_caps(a):
    return f"video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1"


def file_launch(a):
    # Frames come from FileLoop below; the appsrc stamps them with the running time, so the
    # served stream is one continuous live stream across the file's restarts.
    return (
        f"( appsrc name=src is-live=true do-timestamp=true format=time "
        f"caps={file_caps(a)} ! queue ! {encoder(a.fps)} )"
    )


class FileLoop:
    """Decodes the file in real time, forever (seek to 0 at the end), and pushes each frame
    into the appsrc of the currently served media, if any."""

    def __init__(self, a, factory):
        uri = Gst.filename_to_uri(os.path.abspath(a.file))
        self.pipeline = Gst.parse_launch(
            f"uridecodebin uri={uri} ! videoconvert ! videoscale ! videorate "
            f"! {file_caps(a)} ! appsink name=sink sync=true emit-signals=true "
            "max-buffers=2 drop=true"
        )
        self.appsrc = None
        self.pipeline.get_by_name("sink").connect("new-sample", self.on_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        factory.connect("media-configure", self.on_media)

    def start(self):
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            sys.exit("rtsp-camera: cannot play the file")

    def on_media(self, _factory, media):
        self.appsrc = media.get_element().get_by_name("src")
        media.connect("unprepared", self.on_unprepared)

    def on_unprepared(self, _media):
        self.appsrc = None

    def on_sample(self, sink):
        sample = sink.emit("pull-sample")
        src = self.appsrc
        if sample is not None and src is not None:
            buf = sample.get_buffer().copy()
            buf.pts = buf.dts = buf.duration = Gst.CLOCK_TIME_NONE
            src.emit("push-buffer", buf)
        return Gst.FlowReturn.OK

    def on_message(self, _bus, msg):
        if msg.type == Gst.MessageType.EOS:
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0)
        elif msg.type == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            sys.exit(f"rtsp-camera: reading the file failed: {err.message}")


def main():
    a = parse_args()
    server = GstRtspServer.RTSPServer()
    server.set_address(a.host)
    server.set_service(str(a.port))

    factory = GstRtspServer.RTSPMediaFactory()
    # A file is one loop that every client watches (FileLoop feeds the one served media). The
    # test pattern gets a pipeline per client: with a shared one, clients connecting at once
    # (20 streams starting together) could crash the server in gst_rtsp_media_get_rates
    # (an assertion in GStreamer's RTSP server, seen in CI).
    factory.set_shared(a.file is not None)
    file_loop = None
    if a.file:
        if not os.path.isfile(a.file):
            sys.exit(f"rtsp-camera: no such file: {a.file}")
        factory.set_launch(file_launch(a))
        file_loop = FileLoop(a, factory)
    else:
        factory.set_launch(pattern_launch(a))

    if a.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "camera-user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.new_from_string(
                "camera-user, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )
        )

    # Build the pipeline once now so a missing plugin fails here, not at the first client.
    launch = factory.get_launch()
    try:
        Gst.parse_launch(launch.strip().strip("()"))
    except GLib.Error as e:
        sys.exit(f"rtsp-camera: cannot build {launch!r}: {e.message}; run scripts/install-deps.sh")

    server.get_mount_points().add_factory(a.mount, factory)
    if server.attach(None) == 0:
        print(f"rtsp-camera: cannot listen on {a.host}:{a.port}", file=sys.stderr)
        sys.exit(2)

    if file_loop is not None:
        file_loop.start()
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
