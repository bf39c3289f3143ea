"""Stored-video analysis: decoding (PyAV) and face tracking across frames."""
