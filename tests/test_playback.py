"""Playback from the ring buffer without the channel: what PlaybackSource yields decodes as one
continuous fMP4 stream starting at the keyframe at or before the asked time (the same picture as
recorded there), runs across segment boundaries, ends with a notice at a gap naming where the
recording resumes, is paced by the speed, and refuses a time with no recording."""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import numpy as np
import pytest

from contract.media import MediaNotice
from edge_agent.media.playback import LEAD_SECONDS, PlaybackError, PlaybackSource
from edge_agent.record.index import SegmentIndex
from edge_agent.record.segment import Segment
from tests.support.recording import record_file

T0 = 1_790_000_000.0
SESSION = "playback-test-session-0001"


@pytest.fixture(scope="module")
def ring(h264_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SegmentIndex, list[Segment]]:
    """40 s recorded at T0 in 4 s segments, then the same again after a 60 s gap."""
    root = tmp_path_factory.mktemp("ring")
    index = SegmentIndex(root)
    made = record_file(root, index, h264_file, camera="door", start=T0)
    made += record_file(root, index, h264_file, camera="door", start=T0 + 100.0)
    return root, index, made


def frames_of(data: bytes) -> list[tuple[float, np.ndarray]]:
    with av.open(io.BytesIO(data)) as container:
        return [(float(f.time or 0.0), f.to_ndarray(format="gray")) for f in container.decode(video=0)]


def recorded_frame(video: Path, seconds: float) -> np.ndarray:
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds - 1e-3:
                return frame.to_ndarray(format="gray")
    raise AssertionError(f"no frame at {seconds}")


def test_playback_starts_at_the_keyframe_before_the_time_and_runs_on_to_the_gap(
    ring: tuple[Path, SegmentIndex, list[Segment]], h264_file: Path
) -> None:
    root, index, _ = ring
    items = list(PlaybackSource(root, index, SESSION, "door", T0 + 10.4, pace=False))
    notices = [i for i in items if isinstance(i, MediaNotice)]
    chunks = [i for i in items if isinstance(i, bytes)]
    # Started at the keyframe at or before 10.4 s (one a second), ended at the gap, naming it.
    assert notices[0].state == "started" and notices[0].time == pytest.approx(T0 + 10.0, abs=0.01)
    assert notices[-1].state == "ended" and "resumes at" in (notices[-1].error or "")
    assert items[0] == notices[0] and chunks[0][4:8] == b"ftyp" and b"moov" in chunks[0][:2000]
    assert all(c[4:8] == b"moof" for c in chunks[1:])  # whole fragments, appendable one by one
    frames = frames_of(b"".join(chunks))
    # One continuous timeline from 0 over 7 segment boundaries: 30 s at 15 fps, evenly spaced.
    assert frames[0][0] == pytest.approx(0.0, abs=1e-3)
    assert len(frames) == 30 * 15
    steps = np.diff([t for t, _ in frames])
    assert steps.min() > 0 and np.allclose(steps, 1 / 15, atol=2e-3)
    # The first frame is the recorded one at 10 s (frame 150, its number burnt in), byte for byte
    # as decoded from the source: nothing was re-encoded.
    assert np.array_equal(frames[0][1], recorded_frame(h264_file, 10.0))
    assert not np.array_equal(frames[0][1], recorded_frame(h264_file, 11.0))


def test_playback_is_paced_by_its_speed(ring: tuple[Path, SegmentIndex, list[Segment]]) -> None:
    root, index, _ = ring
    source = PlaybackSource(root, index, SESSION, "door", T0, speed=4)
    began = time.monotonic()
    media = 0.0
    for item in source:
        if isinstance(item, bytes) and item[4:8] == b"moof":
            media += 1.0  # one fragment per 1 s GOP
            if media >= 20:
                break
    source.close()
    # 20 s of video at 4x cannot go out before 20 / 4 s less the lead have passed.
    assert time.monotonic() - began >= 20 / 4 - LEAD_SECONDS - 1.0


def test_a_time_without_recording_is_refused_with_where_it_resumes(
    ring: tuple[Path, SegmentIndex, list[Segment]],
) -> None:
    root, index, _ = ring
    with pytest.raises(PlaybackError, match=r"no recording of camera 'door' at .* the next recording starts at"):
        PlaybackSource(root, index, SESSION, "door", T0 + 60.0)
    with pytest.raises(PlaybackError, match="no recording"):
        PlaybackSource(root, index, SESSION, "door", T0 + 10_000.0)
    with pytest.raises(PlaybackError, match="camera 'gate'"):
        PlaybackSource(root, index, SESSION, "gate", T0 + 10.0)
