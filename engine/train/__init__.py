"""Training of the learned parts (joint image-text heads)."""
