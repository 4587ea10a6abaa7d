"""Helpers the end-to-end suite runs beside the classifier (test doubles, not product code)."""
