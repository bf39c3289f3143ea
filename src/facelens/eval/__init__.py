"""Evaluation: data sets, verification metrics, calibration."""
