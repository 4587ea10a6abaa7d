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

from bench.yardsticks import open_session, pillow_tensor
from classifier.model.manifest import load_manifest


def create_app() -> Flask:
    model_dir = Path(os.environ["BENCH_MODEL_DIR"])
    spec = load_manifest(model_dir).input
    session, input_name, output_name = open_session(model_dir)
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> ResponseReturnValue:
        files = request.files.getlist("images")
        if len(files) != spec.frames:
            return jsonify({"error": f"Please upload exactly {spec.frames} images."}), 400
        tensor = pillow_tensor([f.read() for f in files], spec)
        scores = session.run([output_name], {input_name: tensor})[0]
        return jsonify({"predicted_class": int(np.argmax(scores[0]))})

    return app
