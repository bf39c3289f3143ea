"""Image recognition beyond faces: one module per Rekognition operation family (moderation, ...)."""
