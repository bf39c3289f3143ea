"""Image recognition beyond faces: labels (objects) and image properties (DetectLabels)."""
