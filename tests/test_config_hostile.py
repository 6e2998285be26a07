"""A hostile tester's configs: `config check` and `run` refuse what would fail or do nothing at run
time, with exit status 2 and a message naming the file, the key and what to do, never a traceback.
And `test-alarm` says when the full outbox dropped older messages to queue its alarms."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract import encode, topic
from edge_agent.comms.outbox import PRIORITY_EVENT, PRIORITY_STATUS, Outbox, message_size
from edge_agent.comms.test_alarm import make_test_events
from tests.conftest import agent_cmd, free_port

EXIT_BAD_CONFIG = 2
HEAD = "site: v1\ndevice: box-1\n"  # set: a missing site is only a warning, kept out of these outputs


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(agent_cmd(*args), capture_output=True, text=True, timeout=120)


def both_reject(cfg: Path, *words: str) -> str:
    """`config check` and `run` both exit 2 with a short message containing `words`; returns it."""
    check = cli("config", "check", str(cfg))
    run = cli("run", "--config", str(cfg), "--seconds", "1")  # --seconds: a regression ends, not hangs
    for proc in (check, run):
        assert proc.returncode == EXIT_BAD_CONFIG, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) <= 3, proc.stderr
        for word in words:
            assert word in proc.stderr, proc.stderr
    assert run.stderr == check.stderr  # one set of checks, one message
    return check.stderr


def write(tmp_path: Path, text: str | bytes) -> Path:
    cfg = tmp_path / "agent.yaml"
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    else:
        cfg.write_text(text, encoding="utf-8")
    return cfg


# --- 8: accepted, then failed or did nothing at run time ------------------------------------------
def test_empty_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, "# nothing but a comment\n")
    both_reject(cfg, f"config error: {cfg}: the file is empty", "at least one camera", "config init")


def test_no_camera(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"{HEAD}storage: {{root: {tmp_path / 'rec'}}}\n")
    both_reject(
        cfg,
        f"{cfg}: cameras:",
        "no camera or gate door configured: add at least one camera under `cameras:`",
        "or a gate door under `doors:`",
    )
    assert not (tmp_path / "rec").exists()  # refused before anything was created
    init = cli("config", "init", "--storage", str(tmp_path / "rec"))  # no --camera: says what to add
    assert init.returncode == 0 and "# At least one camera is needed" in init.stdout
    cfg.write_text(init.stdout)
    both_reject(cfg, f"{cfg}: cameras:", "no camera or gate door configured")


def test_no_site_is_run_but_warned(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"storage: {{root: {tmp_path / 'rec'}}}\ncameras:\n  shop: {{source: rtsp://h/s}}\n")
    proc = cli("config", "check", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {cfg}: site and device not set, so this box reports as site: 'site'" in proc.stderr


def test_empty_source(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"{HEAD}storage: {{root: {tmp_path / 'rec'}}}\ncameras:\n  shop: {{source: ''}}\n")
    both_reject(cfg, f"{cfg}: cameras.shop.source:", "is empty: give an rtsp:// URL, a video file or /dev/videoN")


def test_malformed_rtsp_url(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"{HEAD}storage: {{root: {tmp_path / 'rec'}}}\ncameras:\n  shop: {{source: 'rtsp://[::1'}}\n")
    both_reject(
        cfg,
        f"{cfg}: cameras.shop.source:",
        "malformed RTSP URL 'rtsp://[::1': Invalid IPv6 URL",
        "expected rtsp://[user:password@]host[:port]/path",
    )


@pytest.mark.parametrize(
    ("line", "key", "where"),
    [
        ('site: "lanxi\\tvillage"', "site", "U+0009 at character 6"),
        ('cameras: {shop: {source: "rtsp://h/s\\x07"}}', "cameras.shop.source", "U+0007 at character 11"),
        (
            'cameras: {shop: {source: rtsp://h/s, password: "hunter2\\n"}}',
            "cameras.shop.password",
            "U+000A at character 8",
        ),
        ('storage: {root: "/srv/rec\\0"}', "storage.root", "U+0000 at character 9"),
    ],
)
def test_control_characters(tmp_path: Path, line: str, key: str, where: str) -> None:
    base = {"site": "site: v1", "cameras": "cameras: {shop: {source: rtsp://h/s}}", "storage": "storage: {root: rec}"}
    base[line.partition(":")[0]] = line
    cfg = write(tmp_path, "\n".join(["device: box-1", *base.values()]) + "\n")
    message = both_reject(cfg, f"{cfg}: {key}:", f"contains a control character ({where}); remove it")
    assert "hunter2" not in message


def test_missing_source_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"{HEAD}storage: {{root: rec}}\ncameras:\n  shop: {{source: videos/shop.mp4}}\n")
    both_reject(
        cfg,
        f"{cfg}: cameras.shop.source: no such file {tmp_path / 'videos' / 'shop.mp4'}",
        "relative path is taken from the config file's directory",
    )
    (tmp_path / "videos" / "shop.mp4").mkdir(parents=True)
    both_reject(cfg, f"{cfg}: cameras.shop.source: {tmp_path / 'videos' / 'shop.mp4'} is not a regular file")


# --- 9: unclear errors ------------------------------------------------------------------------------
@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot write to: a read-only tmpfs (root ignores chmod), else chmod."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
        yield ro
        subprocess.run(["umount", "-l", str(ro)], check=False)
    else:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)


def test_read_only_storage_root(tmp_path: Path, read_only_dir: Path) -> None:
    cam = "cameras:\n  shop: {source: rtsp://h/s}\n"
    why = "read-only filesystem" if os.geteuid() == 0 else "permission denied for user"
    cfg = write(tmp_path, f"{HEAD}storage: {{root: {read_only_dir}}}\n{cam}")
    both_reject(cfg, f"{cfg}: storage.root: {read_only_dir} is not writable ({why}", "point storage.root elsewhere")
    cfg = write(tmp_path, f"{HEAD}storage: {{root: {read_only_dir / 'rec'}}}\n{cam}")
    both_reject(
        cfg,
        f"{cfg}: storage.root: {read_only_dir / 'rec'} does not exist and cannot be created: {read_only_dir} is not "
        f"writable ({why}",
    )


def test_storage_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "disk").write_text("not a directory")
    cfg = write(tmp_path, f"{HEAD}storage: {{root: {tmp_path / 'disk'}}}\ncameras:\n  shop: {{source: rtsp://h/s}}\n")
    both_reject(cfg, f"{cfg}: storage.root: {tmp_path / 'disk'} is a file, not a directory")
    cfg = write(
        tmp_path, f"{HEAD}storage: {{root: {tmp_path / 'disk' / 'rec'}}}\ncameras:\n  shop: {{source: rtsp://h/s}}\n"
    )
    both_reject(cfg, f"cannot be created: {tmp_path / 'disk'} is a file, not a directory")


@pytest.mark.parametrize("root", ["/proc/diaolou", "/sys/kernel/diaolou", "/proc"])
def test_storage_root_in_a_kernel_filesystem(tmp_path: Path, root: str) -> None:
    cfg = write(tmp_path, f"{HEAD}storage: {{root: {root}}}\ncameras:\n  shop: {{source: rtsp://h/s}}\n")
    both_reject(cfg, f"{cfg}: storage.root: {root} is inside /", "a kernel pseudo-filesystem", "/var/lib/diaolou")
    alarm = cli("test-alarm", "--config", str(cfg), "--wait", "0")  # it writes its outbox there too
    assert alarm.returncode == EXIT_BAD_CONFIG and "Traceback" not in alarm.stderr, alarm.stderr
    assert f"{cfg}: storage.root: {root} is inside" in alarm.stderr


def test_config_that_is_not_utf8(tmp_path: Path) -> None:
    text = f"{HEAD}storage: {{root: rec}}\ncameras:\n  shop: {{source: rtsp://h/s}}  # 商店\n".encode("gb18030")
    cfg = write(tmp_path, text)
    both_reject(cfg, f"config error: {cfg}: line 5: not UTF-8 text (byte 0xc9); save the file as UTF-8")


# --- 10: test-alarm and a full outbox ---------------------------------------------------------------
def test_outbox_add_reports_what_it_evicted(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_bytes=300) as box:
        old = [box.add("t", b"x" * 99, priority=PRIORITY_STATUS).seq for _ in range(3)]  # 100 bytes each: full
        alert = box.add("t", b"a" * 149, priority=PRIORITY_EVENT)
        assert alert.seq is not None and alert.evicted == (old[0], old[1])
        assert box.add("t", b"y" * 59, priority=PRIORITY_STATUS).evicted == (old[2],)  # 250 + 60 > 300
        assert box.dropped == 3


def test_alarm_says_how_many_older_messages_the_full_outbox_dropped(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    cfg = write(
        tmp_path,
        f"{HEAD}storage: {{root: {root}}}\nmqtt: {{url: 'mqtt://127.0.0.1:{free_port()}', outbox_max_mb: 0.01}}\n"
        "cameras:\n  shop: {source: rtsp://h/s}\n",
    )
    # Fill the 10 000-byte outbox exactly, with replies a little under two test alarms each:
    # the first two alarms push out one reply each, the third fits in what they freed.
    alarm = message_size(topic("v1", "box-1", "event"), encode(make_test_events(3)[0]))
    reply, size = topic("v1", "box-1", "reply"), alarm * 7 // 4
    with Outbox.at(root, 0.01) as box:
        count = 10_000 // size - 1
        for _ in range(count):
            box.enqueue(reply, b"r" * (size - len(reply)), priority=PRIORITY_STATUS)
        box.enqueue(reply, b"e" * (10_000 - count * size - len(reply)), priority=PRIORITY_EVENT)  # a real alert
        assert box.bytes == 10_000 and box.dropped == 0
    proc = cli("test-alarm", "--config", str(cfg), "--count", "3", "--wait", "0")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr  # no broker: not delivered
    first, second = proc.stdout.splitlines()
    assert first == (
        f"queued 3 test alarms; the outbox {root / 'outbox.db'} is full and dropped 2 older messages to make room "
        "(replies or earlier test alarms, never real alerts); raise mqtt.outbox_max_mb (now 0.01 MB) to keep more "
        "while the link is down"
    )
    assert second.startswith("3 of 3 test alarms not delivered") and "stay queued" in second
    with Outbox.at(root, 0.01) as box:
        assert box.dropped == 2 and box.depth == count - 2 + 1 + 3
