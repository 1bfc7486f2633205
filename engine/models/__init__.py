"""Encoders, the joint image-text model, binary codes and image utilities."""
