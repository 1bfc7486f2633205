"""What the service holds for its lifetime: settings, the backend, lazily loaded models."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.backend import Backend
from engine.settings import Settings


@dataclass
class AppState:
    settings: Settings
    backend: Backend
    # name -> loader; loaded once on first use (models are heavy: never at import time)
    loaders: dict[str, Callable[[], Any]] = field(default_factory=dict)
    _loaded: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        with self._lock:
            if name not in self._loaded:
                if name not in self.loaders:
                    raise KeyError(f"no loader registered for {name!r}")
                self._loaded[name] = self.loaders[name]()
            return self._loaded[name]

    def put(self, name: str, value: Any) -> None:
        self._loaded[name] = value
