"""Multimodal product search: text (hybrid), image (category-aware k-NN), query arithmetic."""
