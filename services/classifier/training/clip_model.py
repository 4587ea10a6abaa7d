"""The CNN-LSTM: a small CNN embeds each frame, an LSTM reads the embeddings in order, and a
linear head scores the classes from its last state, as the original Keras model did."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn


def _conv_block(channels_in: int, channels_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            channels_in,
            channels_out,
            kernel_size=kernel,
            stride=stride,
            padding=(kernel - 1) // 2 if kernel % 2 else 0,
            bias=False,
        ),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class ClipClassifier(nn.Module):
    """Maps `[N, T, H, W, C]` frames in [0, 1] to `[N, classes]` logits."""

    def __init__(
        self,
        classes: int = 8,
        height: int = 64,
        width: int = 64,
        channels: int = 1,
        patch: int = 4,
        widths: tuple[int, ...] = (16, 32, 32),
        embedding: int = 64,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        self.height, self.width, self.channels = height, width, channels
        self.embedding = embedding
        # The first layer cuts the frame into patch x patch tiles (a strided convolution): on two
        # CPU cores it costs half as much to train as 3x3 convolutions at full resolution, and
        # the later 3x3 layers still see every pixel through it.
        layers = [_conv_block(channels, widths[0], kernel=patch, stride=patch)]
        for width_in, width_out in pairwise(widths):
            layers.append(_conv_block(width_in, width_out, kernel=3, stride=2))
        shrink = patch * 2 ** (len(widths) - 1)
        # Flatten keeps where things are in the frame (the hopper, the spout, the lid), which a
        # global pooling would throw away.
        self.frame_encoder = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(widths[-1] * (height // shrink) * (width // shrink), embedding),
            nn.ReLU(inplace=True),
        )
        self.temporal = nn.LSTM(embedding, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        steps = frames.shape[1]
        # Shapes use -1 for the batch so that the exported graph keeps it dynamic.
        images = frames.permute(0, 1, 4, 2, 3).reshape(-1, self.channels, self.height, self.width)
        embedded = self.frame_encoder(images).reshape(-1, steps, self.embedding)
        sequence, _ = self.temporal(embedded)
        logits: torch.Tensor = self.head(sequence[:, -1])  # nn.Module calls are typed Any
        return logits
