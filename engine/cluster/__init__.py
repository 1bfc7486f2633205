"""Provision and control a local OpenSearch node (used when no cluster URL is configured)."""
