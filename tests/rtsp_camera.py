"""A real RTSP camera for the stream tests: GStreamer's RTSP server (Debian's gstreamer1.0-rtsp,
gir1.2-gst-rtsp-server-1.0, python3-gi) serving an H.264 MP4 clip at its own pace, over TCP and UDP.

Run with the system Python (python3-gi is a Debian package, not in the venv):

    /usr/bin/python3 tests/rtsp_camera.py PORT CLIP.mp4 [PATH]
    /usr/bin/python3 tests/rtsp_camera.py --check      (exit 0 when the packages are installed; `make rtsp`)

Each client gets the clip from its first frame (the media is not shared), played in real time (the server's
sinks follow the pipeline clock), so a frame's timestamp in the client equals its time in the clip. Prints
`ready rtsp://127.0.0.1:PORT/PATH` once listening; stopped with SIGTERM or SIGKILL (a camera that drops).
"""

from __future__ import annotations

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def check() -> int:
    """Exit status 0 when every element the camera's pipeline uses is installed."""
    Gst.init(None)
    missing = [name for name in ("filesrc", "qtdemux", "h264parse", "rtph264pay") if not Gst.ElementFactory.find(name)]
    if missing:
        print(f"missing GStreamer elements: {', '.join(missing)}", file=sys.stderr)
    return 1 if missing else 0


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        return check()
    port, clip = sys.argv[1], sys.argv[2]
    path = sys.argv[3] if len(sys.argv) > 3 else "camera"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{clip}" ! qtdemux ! h264parse config-interval=-1 '
                       "! rtph264pay name=pay0 pt=96 config-interval=-1 )")
    factory.set_shared(False)
    server.get_mount_points().add_factory(f"/{path}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(f"ready rtsp://127.0.0.1:{port}/{path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
