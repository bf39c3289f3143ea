"""Model wrappers: one module per model kind, each behind a small `prepare()`-free constructor + call API."""
