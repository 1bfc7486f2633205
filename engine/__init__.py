"""Outfit-matching recommendations and multimodal product search for OpenSearch."""

__version__ = "0.1.0"
