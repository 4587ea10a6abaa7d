"""Fitting the CNN-LSTM on the training clips, watching accuracy on the validation clips."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from clip_data import SIZE, ClipArray, make_clips, training_items
from clip_model import ClipClassifier
from heldout import TRAIN_SEED_START, VALIDATION_SEED_START
from torch import nn

from behaviour_clips import LABELS


def as_input(clips: ClipArray) -> torch.Tensor:
    """uint8 (N, T, H, W) clips as the model's (N, T, H, W, 1) float input in [0, 1]."""
    return torch.from_numpy(clips).float().div_(255.0).unsqueeze(-1)


def accuracy(model: nn.Module, clips: ClipArray, labels: npt.NDArray[np.int64]) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, len(clips), 128):
            logits = model(as_input(clips[first : first + 128]))
            correct += int((logits.argmax(dim=1).numpy() == labels[first : first + 128]).sum())
    return correct / len(clips)


def train(args: argparse.Namespace, log: logging.Logger) -> tuple[ClipClassifier, dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    started = time.monotonic()
    first_seed = TRAIN_SEED_START + args.seed * args.train_clips
    train_clips, train_labels = make_clips(
        training_items(args.train_clips, first_seed, rng), args.workers
    )
    val_clips, val_labels = make_clips(
        training_items(args.validation_clips, VALIDATION_SEED_START, rng), args.workers
    )
    log.info(
        "generated %d training and %d validation clips in %.0f s",
        len(train_clips),
        len(val_clips),
        time.monotonic() - started,
    )

    model = ClipClassifier(classes=len(LABELS), height=SIZE, width=SIZE)
    steps_per_epoch = len(train_clips) // args.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=args.learning_rate,
        total_steps=args.epochs * steps_per_epoch,
        pct_start=0.2,
    )
    shuffler = torch.Generator().manual_seed(args.seed)
    loss_fn = nn.CrossEntropyLoss()
    targets = torch.from_numpy(train_labels)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_clips), generator=shuffler).numpy()
        total_loss, correct = 0.0, 0
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            logits = model(as_input(train_clips[batch]))
            loss = loss_fn(logits, targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(dim=1) == targets[batch]).sum())
        seen = steps_per_epoch * args.batch_size
        log.info(
            "epoch %d/%d: loss %.4f, train accuracy %.4f, validation accuracy %.4f (%.0f s)",
            epoch,
            args.epochs,
            total_loss / seen,
            correct / seen,
            accuracy(model, val_clips, val_labels),
            time.monotonic() - started,
        )
    model.eval()
    return model, {
        "train_clips": args.train_clips,
        "first_train_seed": first_seed,
        "epochs": args.epochs,
        "train_seconds": round(time.monotonic() - started),
    }
