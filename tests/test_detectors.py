"""Person detectors: registry and installs, decoders on hand-made tensors, letterbox, NMS, and the
real YOLOX-Nano and FastestDet weights from ../shared/models on real photos."""

from __future__ import annotations

import functools
import hashlib
import http.server
import math
import os
import sys
import threading
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.detectors import loader
from edge_agent.detectors.base import Box, Detection
from edge_agent.detectors.decoders import decode_fastestdet, decode_yolov8, decode_yolox
from edge_agent.detectors.nms import batched_nms, nms
from edge_agent.detectors.onnx_detector import OnnxDetector, Transform, preprocess, shared_session
from models.registry import (
    ModelEntry,
    ModelError,
    get_entry,
    install_model,
    list_models,
    load_registry,
    model_path,
    parse_registry,
    sha256_file,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_MODELS = SHARED / "models"
IMAGES = SHARED / "data" / "images"
SOURCES = {"yolox-nano": SHARED_MODELS / "yolox_nano.onnx", "fastestdet": SHARED_MODELS / "FastestDet.onnx"}

# Drawn by looking at the photos: the whole astronaut (head to the bottom edge, without the
# helmet on the right), and Messi from his outstretched left hand to his right foot.
ASTRONAUT = Box(18, 14, 365, 512)
MESSI = Box(68, 60, 457, 336)


def boxes_of(d: object) -> list[list[float]]:
    rounded: list[list[float]] = np.round(np.asarray(d, dtype=np.float64), 4).tolist()
    return rounded


# --- registry -------------------------------------------------------------------------------------


def test_shipped_registry_is_valid_and_complete() -> None:
    reg = load_registry()
    names = [m.name for m in reg.models]
    assert names == ["yolox-nano", "fastestdet", "hog-people"]
    yolox, fastest, hog = (reg.get(n) for n in names)
    assert yolox.recommended and not fastest.recommended and not hog.recommended
    assert reg.default.name == "hog-people" and hog.builtin and hog.sha256 is None
    assert yolox.sha256 == "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
    assert fastest.sha256 == "31cb14c017fce347cb4c846ec62fdf00d76bb3beecdf4be21e7116ac67feb880"
    assert (yolox.licence, fastest.licence, hog.licence) == ("Apache-2.0", "BSD-3-Clause", "BSD-3-Clause")
    for entry in (yolox, fastest):
        assert len(entry.classes) == 80 and entry.classes[0] == "person" and entry.classes[79] == "toothbrush"
        assert entry.source_url and entry.source_url.startswith("https://github.com/")
    assert yolox.preprocess and yolox.preprocess.resize == "letterbox_top_left" and yolox.preprocess.pad_value == 114
    assert yolox.input and (yolox.input.name, yolox.input.width, yolox.input.height) == ("images", 416, 416)
    assert fastest.input and (fastest.input.name, fastest.input.width) == ("input.1", 352)
    assert fastest.preprocess and fastest.preprocess.resize == "stretch"
    assert hog.classes == ("person",)


GOOD_ENTRY = """
  - name: m
    family: yolov8
    default: true
    builtin: true
    description: d
    licence: MIT
    classes: [person]
"""


def test_registry_rejects_unknown_keys_and_inconsistent_entries() -> None:
    assert parse_registry("models:" + GOOD_ENTRY).default.name == "m"
    with pytest.raises(ModelError, match="Extra inputs are not permitted"):
        parse_registry("models:" + GOOD_ENTRY + "    colour_order: rgb\n")
    with pytest.raises(ModelError, match="installable model needs source_url, sha256"):
        parse_registry("models:" + GOOD_ENTRY.replace("builtin: true", "builtin: false"))
    with pytest.raises(ModelError, match="exactly one model must be the default"):
        parse_registry("models:" + GOOD_ENTRY + GOOD_ENTRY.replace("name: m", "name: n"))
    with pytest.raises(ModelError, match="duplicate model names"):
        parse_registry("models:" + GOOD_ENTRY + GOOD_ENTRY.replace("default: true", "default: false"))
    with pytest.raises(ModelError, match="invalid model registry"):
        parse_registry("models: [")


def test_unknown_model_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"unknown model 'yolov9'; known models: yolox-nano, fastestdet, hog-people"):
        install_model("yolov9", tmp_path, str(SOURCES["yolox-nano"]))
    with pytest.raises(ModelError, match="known models"):
        loader.load_detector("yolov9", tmp_path)


# --- installing -----------------------------------------------------------------------------------


def test_install_from_local_path_checks_sha256(tmp_path: Path) -> None:
    models = tmp_path / "models"
    status = {s.name: s for s in list_models(models)}
    assert not status["yolox-nano"].installed and status["hog-people"].installed and status["hog-people"].builtin

    path = install_model("yolox-nano", models, str(SOURCES["yolox-nano"]))
    assert path == models / "yolox-nano.onnx"
    assert sha256_file(path) == get_entry("yolox-nano").sha256
    assert model_path("yolox-nano", models) == path
    assert sorted(p.name for p in models.iterdir()) == ["yolox-nano.onnx", "yolox-nano.onnx.verified.json"]
    status = {s.name: s for s in list_models(models)}
    assert status["yolox-nano"].installed and status["yolox-nano"].path == path and status["yolox-nano"].recommended
    assert not status["fastestdet"].installed and status["fastestdet"].path is None


def test_tampered_file_is_refused_and_nothing_installed(tmp_path: Path) -> None:
    data = bytearray(SOURCES["fastestdet"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered = tmp_path / "FastestDet.onnx"
    tampered.write_bytes(bytes(data))
    models = tmp_path / "models"
    actual = hashlib.sha256(data).hexdigest()
    expected = get_entry("fastestdet").sha256
    with pytest.raises(ModelError, match="SHA-256 mismatch") as err:
        install_model("fastestdet", models, str(tampered))
    assert f"expected {expected}" in str(err.value) and f"got {actual}" in str(err.value)
    assert list(models.iterdir()) == []  # no model, no temp file, no sidecar
    with pytest.raises(ModelError, match="diaolou-agent models install fastestdet --from PATH_OR_URL"):
        model_path("fastestdet", models)


def test_larger_source_stops_early(tmp_path: Path) -> None:
    big = tmp_path / "big.onnx"
    big.write_bytes(SOURCES["fastestdet"].read_bytes() + b"\0" * 10)
    with pytest.raises(ModelError, match="larger than the expected 998169 bytes"):
        install_model("fastestdet", tmp_path / "models", str(big))
    assert list((tmp_path / "models").iterdir()) == []


def test_failed_reinstall_keeps_the_good_model(tmp_path: Path) -> None:
    models = tmp_path / "models"
    good = install_model("fastestdet", models, str(SOURCES["fastestdet"]))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\0" * good.stat().st_size)
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        install_model("fastestdet", models, str(bad))
    assert model_path("fastestdet", models) == good


def test_load_time_check_is_cheap_but_catches_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    path = install_model("fastestdet", models, str(SOURCES["fastestdet"]))
    hashed: list[Path] = []
    real_sha = sha256_file

    def counting_sha(p: Path) -> str:
        hashed.append(p)
        return real_sha(p)

    monkeypatch.setattr("models.registry.sha256_file", counting_sha)
    model_path("fastestdet", models)
    assert hashed == []  # sidecar matched: no re-hash

    st = path.stat()
    # Same bytes, new mtime (as after a copy or restore): re-hashed once, accepted, sidecar refreshed.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    model_path("fastestdet", models)
    model_path("fastestdet", models)
    assert hashed == [path]

    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(
        ModelError, match=r"corrupt or altered.*reinstall with: diaolou-agent models install fastestdet"
    ):
        model_path("fastestdet", models)
    assert not {s.name: s for s in list_models(models)}["fastestdet"].installed


def test_builtin_and_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="built in; there is nothing to install"):
        install_model("hog-people", tmp_path)
    with pytest.raises(ModelError, match="built in and has no model file"):
        model_path("hog-people", tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        install_model("yolox-nano", tmp_path, str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match="local path or an http"):
        install_model("yolox-nano", tmp_path, "ftp://example.org/yolox_nano.onnx")


@pytest.fixture
def http_models() -> Iterator[str]:
    """A local HTTP server serving ../shared/models (no internet needed)."""
    handler = functools.partial(_QuietHandler, directory=str(SHARED_MODELS))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_install_from_url(tmp_path: Path, http_models: str) -> None:
    path = install_model("fastestdet", tmp_path, f"{http_models}/FastestDet.onnx")
    assert model_path("fastestdet", tmp_path) == path
    with pytest.raises(ModelError, match=r"cannot download.*404"):
        install_model("yolox-nano", tmp_path, f"{http_models}/nope.onnx")
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        install_model("yolox-nano", tmp_path, f"{http_models}/README.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fastestdet.onnx", "fastestdet.onnx.verified.json"]


# --- decoders on hand-made tensors ----------------------------------------------------------------


def test_decode_yolox_by_hand() -> None:
    # 64x64 input, strides 8/16/32: 8*8 + 4*4 + 2*2 = 84 anchors, 3 classes.
    out = np.zeros((1, 84, 8), np.float32)
    # stride 8, cell x=2 y=3 -> row 3*8+2 = 26: xy = (2.5, 3.25)*8, wh = (2, 1)*8; score 0.8*0.9 (class 1)
    out[0, 26] = [0.5, 0.25, math.log(2), 0.0, 0.8, 0.1, 0.9, 0.2]
    # stride 16, cell x=1 y=2 -> row 64 + 2*4+1 = 73: xy = (16, 32), wh = (16, 64); score 0.5*0.6 = 0.3
    out[0, 73] = [0.0, 0.0, 0.0, math.log(4), 0.5, 0.6, 0.0, 0.0]
    # stride 32, cell x=1 y=1 -> row 80 + 3 = 83: xy = (16, 48), wh = (32, 32); score 1.0
    out[0, 83] = [-0.5, 0.5, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    d = decode_yolox(out, 64, 64, (8, 16, 32), threshold=0.5)
    assert boxes_of(d.boxes) == [[12, 22, 28, 30], [0, 32, 32, 64]]
    assert d.scores.tolist() == pytest.approx([0.72, 1.0], abs=1e-6)
    assert d.class_ids.tolist() == [1, 0]
    d = decode_yolox(out, 64, 64, (8, 16, 32), threshold=0.25)
    assert boxes_of(d.boxes) == [[12, 22, 28, 30], [8, 0, 24, 64], [0, 32, 32, 64]]
    assert d.scores.tolist() == pytest.approx([0.72, 0.3, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="does not fit a 416x416 input"):
        decode_yolox(out, 416, 416, (8, 16, 32), threshold=0.5)


def test_decode_yolov8_by_hand() -> None:
    # [1, 4+C, N] with C = 2, N = 3: columns are anchors.
    out = np.array(
        [
            [
                [50, 10, 5],  # cx
                [40, 20, 5],  # cy
                [20, 4, 2],  # w
                [10, 8, 2],  # h
                [0.9, 0.2, 0.3],  # class 0
                [0.1, 0.7, 0.1],  # class 1
            ]
        ],
        np.float32,
    )
    d = decode_yolov8(out, num_classes=2, threshold=0.5)
    assert boxes_of(d.boxes) == [[40, 35, 60, 45], [8, 16, 12, 24]]
    assert d.scores.tolist() == pytest.approx([0.9, 0.7]) and d.class_ids.tolist() == [0, 1]
    transposed = decode_yolov8(out.transpose(0, 2, 1), num_classes=2, threshold=0.5)
    assert boxes_of(transposed.boxes) == boxes_of(d.boxes)
    with pytest.raises(ValueError, match="4 \\+ 3 classes"):
        decode_yolov8(out, num_classes=3, threshold=0.5)


def test_decode_fastestdet_by_hand() -> None:
    # [1, 5+C, H, W] with C = 2 on a 2x3 grid for a 60x40 input.
    out = np.zeros((1, 7, 2, 3), np.float32)
    out[0, 5:] = 0.5  # softmax of equal logits
    out[0, 0] = 0.01  # background objectness everywhere
    # row 1, col 2: tanh(tx)=0, tanh(ty)=0.5, sigmoid(tw)=0.5, sigmoid(th)=0.25; class 1 at 0.8
    out[0, :, 1, 2] = [0.64, 0.0, math.atanh(0.5), 0.0, math.log(1 / 3), 0.2, 0.8]
    d = decode_fastestdet(out, 60, 40, threshold=0.5)
    # cx = (0 + 2) / 3 * 60 = 40, cy = (0.5 + 1) / 2 * 40 = 30, w = 0.5 * 60 = 30, h = 0.25 * 40 = 10
    assert boxes_of(d.boxes) == [[25, 25, 55, 35]]
    assert d.scores.tolist() == pytest.approx([0.64**0.6 * 0.8**0.4], abs=1e-6)
    assert d.class_ids.tolist() == [1]
    # row 0, col 0: tanh(tx) = -1 (saturated), sigmoid(tw), sigmoid(th) = 1: a box as big as the input
    # centred on (-1 + 0) / 3 * 60 = -20, (0 + 0) / 2 * 40 = 0: NMS and the caller clip, not the decoder
    out[0, :, 0, 0] = [1.0, -50.0, 0.0, 50.0, 50.0, 1.0, 0.0]
    d = decode_fastestdet(out, 60, 40, threshold=0.5)
    assert boxes_of(d.boxes) == [[-50, -20, 10, 20], [25, 25, 55, 35]]
    assert d.scores.tolist() == pytest.approx([1.0, 0.64**0.6 * 0.8**0.4], abs=1e-6)
    assert d.class_ids.tolist() == [0, 1]


def test_decoders_return_empty_when_nothing_passes() -> None:
    assert len(decode_yolox(np.zeros((1, 84, 8), np.float32), 64, 64, (8, 16, 32), 0.5)) == 0
    assert len(decode_yolov8(np.zeros((1, 6, 5), np.float32), 2, 0.5)) == 0
    empty = decode_fastestdet(np.zeros((1, 7, 2, 3), np.float32), 60, 40, 0.5)
    assert empty.boxes.shape == (0, 4) and empty.class_ids.dtype == np.int64


# --- NMS ------------------------------------------------------------------------------------------


def test_nms_cases() -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10],  # best: kept
            [1, 1, 11, 11],  # IoU 81/119 = 0.68 with the first: suppressed
            [20, 20, 30, 30],  # disjoint: kept
            [0, 0, 10, 5],  # IoU 0.5 with the first: suppressed at 0.45, kept at 0.5
        ],
        np.float32,
    )
    scores = np.array([0.95, 0.9, 0.5, 0.6], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [0, 2]
    assert nms(boxes, scores, 0.5).tolist() == [0, 3, 2]
    assert nms(boxes[:0], scores[:0]).tolist() == []
    # Equal scores: input order decides, deterministically.
    assert nms(boxes[:2], np.array([0.5, 0.5], np.float32)).tolist() == [0]


def test_batched_nms_keeps_overlapping_boxes_of_different_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 10, 10], [-5, -5, 3, 3]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 1, 0, 1], np.int64)
    assert batched_nms(boxes, scores, classes).tolist() == [0, 1, 3]


# --- preprocessing and the letterbox --------------------------------------------------------------


def entry_with(resize: str, colour: str = "bgr", **pre: object) -> ModelEntry:
    base = get_entry("yolox-nano").model_dump()
    base["preprocess"].update(resize=resize, colour=colour, **pre)
    base["input"].update(width=64, height=48)
    return ModelEntry.model_validate(base)


@pytest.mark.parametrize("resize", ["letterbox_top_left", "letterbox_center", "stretch"])
@pytest.mark.parametrize("size", [(200, 100), (100, 200), (64, 48), (33, 17), (640, 480)])
def test_letterbox_round_trip(resize: str, size: tuple[int, int]) -> None:
    w, h = size
    image = np.full((h, w, 3), 200, np.uint8)
    tensor, tf = preprocess(image, entry_with(resize))
    assert tensor.shape == (1, 3, 48, 64) and tensor.dtype == np.float32
    # The whole frame maps onto exactly the region holding image content; the rest is padding.
    x1, y1, x2, y2 = tf.to_model(np.array([[0, 0, w, h]], np.float32))[0].tolist()
    content = tensor[0, 0] == 200
    ys, xs = np.nonzero(content)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pytest.approx((x1, y1, x2, y2), abs=1e-4)
    assert np.all(tensor[0, 0][~content] == 114)
    if resize == "letterbox_top_left":
        assert (x1, y1) == (0, 0)
    elif resize == "letterbox_center":
        assert abs(x1 - (64 - x2)) <= 1 and abs(y1 - (48 - y2)) <= 1
    else:
        assert (x1, y1, x2, y2) == pytest.approx((0, 0, 64, 48))
    if resize != "stretch":
        assert x2 - x1 == 64 or y2 - y1 == 48  # touches two sides
        assert (x2 - x1) / (y2 - y1) == pytest.approx(w / h, rel=0.1)  # aspect kept (to the pixel)
    boxes = np.array([[0, 0, w, h], [w * 0.25, h * 0.1, w * 0.5, h * 0.9]], np.float32)
    assert tf.to_frame(tf.to_model(boxes)) == pytest.approx(boxes, abs=1e-3)


def test_preprocess_colour_and_normalisation_come_from_the_entry() -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30  # B, G, R
    t, _ = preprocess(image, entry_with("stretch"))
    assert t[0, :, 0, 0].tolist() == [10, 20, 30]
    t, _ = preprocess(image, entry_with("stretch", colour="rgb", scale=0.1, mean=[1, 1, 1], std=[2, 1, 0.5]))
    assert t[0, :, 0, 0].tolist() == pytest.approx([(3 - 1) / 2, (2 - 1) / 1, (1 - 1) / 0.5])
    with pytest.raises(ValueError, match="BGR image"):
        preprocess(np.zeros((10, 10), np.uint8), entry_with("stretch"))


def test_transform_maps_model_pixels_back() -> None:
    tf = Transform(sx=0.32, sy=0.32, dx=0.0, dy=16.0)
    assert tf.to_frame(np.array([[16, 24, 48, 40]], np.float32)).tolist() == [pytest.approx([50, 25, 150, 75])]


# --- a whole OnnxDetector on a hand-made graph ----------------------------------------------------


def constant_yolov8_model(path: Path, output: np.ndarray, size: int = 64) -> None:
    """A graph that ignores its image and returns `output`: the detector's plumbing tested exactly."""
    const = numpy_helper.from_array(output.astype(np.float32), "raw")
    nodes = [
        helper.make_node("ReduceMax", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["raw", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "const",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=[const, numpy_helper.from_array(np.zeros((), np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def yolov8_entry(shape: tuple[int, ...]) -> ModelEntry:
    return ModelEntry.model_validate(
        {
            "name": "yolov8-test",
            "family": "yolov8",
            "description": "hand-made",
            "licence": "none",
            "source_url": "https://example.invalid/x.onnx",
            "sha256": "0" * 64,
            "input": {"name": "images", "width": 64, "height": 64},
            "output": {"shape": list(shape)},
            "preprocess": {"resize": "letterbox_center", "pad_value": 114, "colour": "rgb", "scale": 1 / 255},
            "classes": ["person", "bicycle"],
        }
    )


def test_onnx_detector_end_to_end_on_a_constant_graph(tmp_path: Path) -> None:
    # A 200x100 frame letterboxed (centre) into 64x64: scale 0.32, content rows 16..48.
    cols = [
        (32, 32, 32, 16, 0.9, 0.0),  # -> frame (50, 25, 150, 75)
        (33, 32, 32, 16, 0.8, 0.0),  # duplicate of the first: removed by NMS
        (32, 32, 32, 16, 0.0, 0.95),  # a bicycle: not asked for
        (60, 20, 16, 16, 0.7, 0.0),  # runs off the right edge: clipped to the frame
        (32, 8, 10, 6, 0.99, 0.0),  # entirely in the top padding: clips to nothing, dropped
        (10, 40, 4, 4, 0.3, 0.0),  # below the threshold
    ]
    raw = np.array(cols, np.float32).T[None]  # [1, 6, 6]
    path = tmp_path / "const.onnx"
    constant_yolov8_model(path, raw)
    det = OnnxDetector(yolov8_entry(raw.shape), path, threshold=0.5)
    found = det.detect(np.zeros((100, 200, 3), np.uint8))
    assert det.name == "yolov8-test"
    assert [d.label for d in found] == ["person", "person"]
    assert [d.score for d in found] == pytest.approx([0.9, 0.7])
    assert found[0].box.as_list() == [50.0, 25.0, 150.0, 75.0]
    # (52, 12, 68, 28) in model pixels -> x (162.5 .. 212.5) clipped to 200, y (-12.5 .. 37.5) clipped to 0
    assert found[1].box.as_list() == [162.5, 0.0, 200.0, 37.5]
    both = OnnxDetector(yolov8_entry(raw.shape), path, threshold=0.5, classes=("person", "bicycle"))
    assert sorted(d.label for d in both.detect(np.zeros((100, 200, 3), np.uint8))) == ["bicycle", "person", "person"]


def test_onnx_detector_refuses_a_file_that_is_not_the_registered_model(tmp_path: Path) -> None:
    raw = np.zeros((1, 6, 5), np.float32)
    path = tmp_path / "const.onnx"
    constant_yolov8_model(path, raw)
    with pytest.raises(ModelError, match=r"output shape \[1, 6, 5\], the registry says \[1, 6, 7\]"):
        OnnxDetector(yolov8_entry((1, 6, 7)), path)
    with pytest.raises(ModelError, match=r"input is named 'images', the registry says 'input\.1'"):
        OnnxDetector(get_entry("fastestdet"), path)
    with pytest.raises(ModelError, match="has no class dog"):
        OnnxDetector(yolov8_entry(raw.shape), path, classes=("dog",))


# --- real models on real photos -------------------------------------------------------------------


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared weights installed (copied and SHA-256 checked) into a scratch models dir."""
    for source in SOURCES.values():
        assert source.exists(), f"missing {source} (the repo expects ../shared beside it)"
    d = tmp_path_factory.mktemp("models")
    for name, source in SOURCES.items():
        install_model(name, d, str(source))
    return d


@pytest.fixture(autouse=True)
def fresh_loader_cache() -> Iterator[None]:
    loader.clear_cache()
    yield
    loader.clear_cache()


def read_image(name: str) -> np.ndarray:
    image = cv2.imread(str(IMAGES / name), cv2.IMREAD_COLOR)
    assert image is not None, name
    return image


def best_iou(found: list[Detection], truth: Box) -> float:
    return max((d.box.iou(truth) for d in found), default=0.0)


@pytest.mark.parametrize("name", ["yolox-nano", "fastestdet"])
def test_finds_the_astronaut(models_dir: Path, name: str) -> None:
    det = loader.load_detector(name, models_dir, threshold=0.5)
    found = det.detect(read_image("astronaut.png"))
    assert found and all(d.label == "person" for d in found)
    assert best_iou(found, ASTRONAUT) > 0.5, found
    for d in found:  # in frame coordinates, clipped
        assert 0 <= d.box.x1 < d.box.x2 <= 512 and 0 <= d.box.y1 < d.box.y2 <= 512


@pytest.mark.parametrize("name", ["yolox-nano", "fastestdet"])
def test_finds_people_in_messi5(models_dir: Path, name: str) -> None:
    det = loader.load_detector(name, models_dir, threshold=0.5)
    found = det.detect(read_image("messi5.jpg"))
    assert best_iou(found, MESSI) > 0.5, found
    # Messi plus spectators in the stands (both models see at least three of them at 0.5).
    assert len(found) >= 4
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


@pytest.mark.parametrize("name", ["yolox-nano", "fastestdet"])
def test_no_person_in_empty_images(models_dir: Path, name: str) -> None:
    det = loader.load_detector(name, models_dir, threshold=0.5)
    grey = np.full((480, 640, 3), 128, np.uint8)
    gradient = np.repeat(np.repeat(np.linspace(0, 255, 640).astype(np.uint8)[None, :, None], 480, 0), 3, 2)
    noise = np.random.default_rng(7).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    for image in (grey, gradient, noise):
        assert det.detect(image) == []


def test_concurrent_detect_on_one_shared_session(models_dir: Path) -> None:
    det = loader.load_detector("yolox-nano", models_dir, threshold=0.5)
    images = [read_image("astronaut.png"), read_image("messi5.jpg"), read_image("basketball1.png")] * 4
    alone = [det.detect(im) for im in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(det.detect, images))
    assert together == alone


def test_loader_caches_and_shares_sessions(models_dir: Path) -> None:
    a = loader.load_detector("fastestdet", models_dir, threshold=0.5, threads=1)
    assert loader.load_detector("fastestdet", models_dir, threshold=0.5, threads=1) is a
    b = loader.load_detector("fastestdet", models_dir, threshold=0.6, threads=1)
    assert b is not a and isinstance(a, OnnxDetector) and isinstance(b, OnnxDetector)
    assert a.session is b.session  # one copy of the weights for every camera
    c = loader.load_detector("fastestdet", models_dir, threshold=0.5, threads=2)
    assert isinstance(c, OnnxDetector) and c.session is not a.session
    assert shared_session(models_dir / "fastestdet.onnx", 1) is a.session


def test_loader_not_installed_says_how(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"not installed.*diaolou-agent models install yolox-nano --from PATH_OR_URL"):
        loader.load_detector("yolox-nano", tmp_path)


def test_loader_dispatches_hog_lazily(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[float, int]] = []

    class FakeHog:
        name = "hog-people"

        def __init__(self, threshold: float, threads: int) -> None:
            calls.append((threshold, threads))

        def detect(self, image: np.ndarray) -> list[Detection]:
            return []

    fake = types.ModuleType("edge_agent.detectors.hog")
    fake.HogDetector = FakeHog  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edge_agent.detectors.hog", fake)
    det = loader.load_detector("hog-people", tmp_path, threshold=0.3, threads=2)
    assert isinstance(det, FakeHog) and calls == [(0.3, 2)]
    # models_dir is irrelevant to a builtin model: another dir gets the same instance.
    assert loader.load_detector("hog-people", tmp_path / "other", threshold=0.3, threads=2) is det


def test_loader_hog_missing_is_a_model_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "edge_agent.detectors.hog", None)  # makes the import fail
    with pytest.raises(ModelError, match="HOG people detector is not available"):
        loader.load_detector("hog-people", tmp_path)
