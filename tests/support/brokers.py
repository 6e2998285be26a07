"""Real MQTT brokers for tests: Mosquitto (production) and amqtt (the embedded one-box broker).

Each starts as its own process on a free loopback port, so a test can stop it (kill -9),
restart it on the same port (with Mosquitto's persistence file), and never touches another
test's broker.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"broker did not listen on port {port}")


@dataclass
class Broker:
    kind: str  # "mosquitto" | "amqtt"
    workdir: Path
    port: int = field(default_factory=free_port)
    password_file: Path | None = None
    acl_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def protocol(self) -> str:
        return "v5" if self.kind == "mosquitto" else "v311"

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"mqtt://{auth}127.0.0.1:{self.port}"

    def start(self) -> Broker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"{self.kind}.log", "ab")  # noqa: SIM115 - owned by the process
        if self.kind == "mosquitto":
            assert shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists(), "mosquitto (Debian) needed"
            conf = self.workdir / "mosquitto.conf"
            lines = [
                # As root, Mosquitto drops to the `mosquitto` user, which cannot write pytest's
                # root-only temp dirs: persistence and password files would silently fail.
                *(["user root"] if os.geteuid() == 0 else []),
                f"listener {self.port} 127.0.0.1",
                "persistence true",
                f"persistence_location {self.workdir}/",
                "autosave_interval 1",
                "max_queued_messages 100000",
                "max_inflight_messages 100",
            ]
            if self.password_file is not None:
                lines += ["allow_anonymous false", f"password_file {self.password_file}"]
                if self.acl_file is not None:
                    lines.append(f"acl_file {self.acl_file}")
            else:
                lines.append("allow_anonymous true")
            conf.write_text("\n".join(lines) + "\n")
            exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=log)
        else:
            conf = self.workdir / "amqtt.yaml"
            conf.write_text(
                textwrap.dedent(
                    f"""\
                    listeners:
                      default:
                        type: tcp
                        bind: 127.0.0.1:{self.port}
                    plugins:
                      amqtt.plugins.authentication.AnonymousAuthPlugin:
                        allow_anonymous: true
                    """
                )
            )
            amqtt = Path(sys.executable).with_name("amqtt")
            self.proc = subprocess.Popen([str(amqtt), "-c", str(conf)], stdout=log, stderr=log)
        wait_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
