"""Tests of the classifier service: unit, API (in-process), integration (real processes), model."""
