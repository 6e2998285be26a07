"""A TCP proxy in front of an RTSP server that can cut the stream at the worst moment.

A camera that loses power or hangs rarely does so between two frames. The worst place is
inside a keyframe: the parameter sets (SPS/PPS) have gone out, the picture has not. FFmpeg's
parser then holds an access unit with no picture in it, and a recorder that writes it leaves a
file decoders reject. Timing a SIGSTOP to hit that window is luck; this proxy hits it every
time. It reads the RTSP-over-TCP stream (interleaved `$` frames), and once armed it stops just
before the first RTP packet that starts an IDR slice: `hang` keeps the connection open and
silent, `drop` closes it. Connections after the cut are passed through untouched, so the
agent's reconnect is served normally.
"""

from __future__ import annotations

import socket
import threading
from typing import Literal

CutMode = Literal["hang", "drop"]

NAL_IDR = 5
NAL_FU_A = 28


def starts_idr(rtp: bytes) -> bool:
    """Does this RTP packet carry the start of an H.264 IDR slice?"""
    if len(rtp) < 14:
        return False
    header = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10:  # header extension
        if len(rtp) < header + 4:
            return False
        header += 4 + 4 * int.from_bytes(rtp[header + 2 : header + 4], "big")
    payload = rtp[header:]
    if len(payload) < 2:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == NAL_IDR:
        return True
    return nal_type == NAL_FU_A and bool(payload[1] & 0x80) and payload[1] & 0x1F == NAL_IDR


class RtspCutter:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._mode: CutMode | None = None
        self._lock = threading.Lock()
        self.cut = threading.Event()  # set once the stream was cut
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{mount}"

    def arm(self, mode: CutMode) -> None:
        """Cut the current session before the next keyframe's picture."""
        with self._lock:
            self._mode = mode

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, server]
            threading.Thread(target=self._pump_raw, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump_rtsp, args=(server, client), daemon=True).start()

    def _pump_raw(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def _should_cut(self, frame: bytes) -> CutMode | None:
        channel = frame[1]
        if channel % 2 or self.cut.is_set() or not starts_idr(frame[4:]):
            return None
        with self._lock:
            mode, self._mode = self._mode, None
        return mode

    def _pump_rtsp(self, src: socket.socket, dst: socket.socket) -> None:
        buf = b""
        try:
            while data := src.recv(65536):
                buf += data
                out = bytearray()
                while buf:
                    if buf[0] == 0x24:  # '$': an interleaved RTP/RTCP frame
                        if len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[2:4], "big"):
                            break
                        size = 4 + int.from_bytes(buf[2:4], "big")
                        frame, buf = buf[:size], buf[size:]
                        mode = self._should_cut(frame)
                        if mode is not None:
                            dst.sendall(out)
                            self.cut.set()
                            if mode == "drop":
                                # shutdown, not just close: another thread is blocked in recv on
                                # this socket, and close alone would send no FIN until it returns.
                                dst.shutdown(socket.SHUT_RDWR)
                            return  # hang: never send another byte on this connection
                        out += frame
                    else:  # an RTSP response: headers, then Content-Length bytes of body
                        end = buf.find(b"\r\n\r\n")
                        if end < 0:
                            break
                        length = 0
                        for line in buf[:end].split(b"\r\n"):
                            name, _, value = line.partition(b":")
                            if name.strip().lower() == b"content-length":
                                length = int(value.strip())
                        size = end + 4 + length
                        if len(buf) < size:
                            break
                        out += buf[:size]
                        buf = buf[size:]
                dst.sendall(out)
        except OSError:
            pass
