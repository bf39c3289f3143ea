"""Recognisers other than faces: each operation's model and service, one module per kind."""
