"""FastAPI service: app factory, one router per feature."""
