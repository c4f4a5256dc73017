#!/usr/bin/env python3
"""Generate a tiny YOLO-style UI-element detector in ONNX for baton-vision's tests.

The network is real ONNX (a random-weight convolution over the input) but its output is
pinned: `output0 = KNOWN + 0 * mean(conv(images))`, so the detections it yields are known
in advance and the Rust decoding + NMS path can be checked end to end through ONNX Runtime.

Layout: input `images` float32 [1, 3, 64, 64] (RGB, 0..1); output `output0` float32
[1, 4 + 7, N] in YOLOv8 order (cx, cy, w, h in input pixels, then one score per class).
Class order = baton-vision's `ONNX_CLASSES`: button, text_field, checkbox, radio_button,
link, label, icon.

Usage: python3 models/gen_tiny_detector.py OUT.onnx   (needs the `onnx` PyPI package)
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NUM_CLASSES = 7
SIZE = 64

# (cx, cy, w, h, class, score) in model-input pixels.
DETECTIONS = [
    (20.0, 10.0, 24.0, 10.0, 0, 0.95),  # button
    (21.0, 10.5, 24.0, 10.0, 0, 0.80),  # same button, shifted: NMS must drop it
    (10.0, 40.0, 8.0, 8.0, 2, 0.90),    # checkbox
    (44.0, 40.0, 30.0, 10.0, 1, 0.70),  # text field
    (50.0, 56.0, 6.0, 6.0, 6, 0.10),    # icon below the score threshold
    (32.0, 32.0, 10.0, 10.0, 3, 0.00),  # nothing
]


def build(path: str) -> None:
    n = len(DETECTIONS)
    known = np.zeros((1, 4 + NUM_CLASSES, n), dtype=np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(DETECTIONS):
        known[0, 0:4, i] = (cx, cy, w, h)
        known[0, 4 + cls, i] = score
    rng = np.random.default_rng(1234)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["feat"], pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["feat"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["known", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "baton_tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + NUM_CLASSES, n])],
        initializer=[
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "zero"),
            numpy_helper.from_array(known, "known"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="baton"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gen_tiny_detector.py OUT.onnx")
    build(sys.argv[1])
