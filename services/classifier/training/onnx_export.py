"""Exporting the fitted network to one self-contained ONNX file the service can load."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from clip_data import FRAMES, SIZE
from clip_model import ClipClassifier
from torch import nn


def export_onnx(model: ClipClassifier, path: Path, opset: int) -> None:
    """ONNX with a dynamic batch axis named `batch`, weights inside the one file."""
    example = torch.zeros(2, FRAMES, SIZE, SIZE, 1)
    batch = torch.export.Dim("batch", min=1, max=1024)
    export_checked(model, example, path, ("frames", "logits"), {"frames": {0: batch}}, opset)


def export_checked(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    names: tuple[str, str],
    dynamic_shapes: Any,
    opset: int,
) -> None:
    """`module` on `example` as one self-contained ONNX file at `path` (`names`: its input and
    output), without the exporter's debug metadata, checked by onnx's full checker. Every graph
    the training code writes (the clip model, its parts, the sequence head) goes through here."""
    input_name, output_name = names
    # The exporter narrates its progress through warnings and logging; its result is checked
    # below instead.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=True,
            opset_version=opset,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    exported = onnx.load(str(path))
    strip_debug_metadata(exported.graph)
    for function in exported.functions:
        del function.metadata_props[:]
        for node in function.node:
            del node.metadata_props[:]
    onnx.save(exported, str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def strip_debug_metadata(graph: onnx.GraphProto) -> None:
    """Drop the exporter's per-node notes: Python stack traces with this machine's file paths,
    FX node dumps and scope names. They help debug an export, not run the model."""
    del graph.metadata_props[:]
    for value in (*graph.input, *graph.output, *graph.value_info):
        del value.metadata_props[:]
    for tensor in graph.initializer:
        del tensor.metadata_props[:]
    for node in graph.node:
        del node.metadata_props[:]
        for attribute in node.attribute:
            if attribute.HasField("g"):
                strip_debug_metadata(attribute.g)
            for subgraph in attribute.graphs:
                strip_debug_metadata(subgraph)
