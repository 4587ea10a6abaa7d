"""The seed-style baseline: the original Flask ``/predict``, under gunicorn with sync workers.

A benchmark fixture, not product code: the same model and the same Pillow preprocessing as the
naive reference, behind Flask's own multipart parsing, one sync worker per core.
Run: ``gunicorn -w 2 'bench.seed_app:create_app()'`` with BENCH_MODEL_DIR set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from bench.yardsticks import _naive_tensor, _session
from classifier.model.manifest import load_manifest


def create_app() -> Flask:
    model_dir = Path(os.environ["BENCH_MODEL_DIR"])
    spec = load_manifest(model_dir).input
    session, input_name, output_name = _session(model_dir)
    shape = (spec.color_mode, spec.width, spec.height, spec.resize_filter, spec.scaling)
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> ResponseReturnValue:
        files = request.files.getlist("images")
        if len(files) != spec.frames:
            return jsonify({"error": f"Please upload exactly {spec.frames} images."}), 400
        tensor = _naive_tensor([f.read() for f in files], *shape)
        scores = session.run([output_name], {input_name: tensor})[0]
        return jsonify({"predicted_class": int(np.argmax(scores[0]))})

    return app
