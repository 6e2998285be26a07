"""A real RTSP server for tests and benchmarks: GStreamer's gst-rtsp-server (Debian packages).

Run with the system Python, which has the GObject bindings (scripts/test.sh installs
python3-gi, gir1.2-gst-rtsp-server-1.0 and the good/bad plugin sets):

    /usr/bin/python3 tests/support/rtsp_server.py PORT /mount=FILE.mp4 [/mount2=FILE2.mp4 ...]

Each mount serves the H.264 in an MP4 file over RTSP (TCP interleaved and UDP). Each client
gets its own pipeline from the start of the file (so a reconnecting agent is served again);
the stream ends at the end of the file, as a camera that stops sending would. Prints
"ready" once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    Gst.init(None)
    port = sys.argv[1]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    mounts = server.get_mount_points()
    for arg in sys.argv[2:]:
        mount, _, path = arg.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        parser = "h265parse ! rtph265pay" if path.endswith(".h265.mp4") else "h264parse ! rtph264pay"
        factory.set_launch(f"( filesrc location={path} ! qtdemux ! {parser} name=pay0 pt=96 config-interval=1 )")
        factory.set_shared(False)
        mounts.add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {port}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
