"""Image recognition beyond faces: each operation's model and service, one module per kind (labels, moderation,
text)."""
