"""Test-data makers shared by the classifier tests (models, frames, uploads)."""
