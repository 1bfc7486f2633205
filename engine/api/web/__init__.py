"""The web app's package files: Jinja2 templates and plain JS/CSS (served by the app, no CDN)."""

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
