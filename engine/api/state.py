"""What the service holds for its lifetime: settings, the backend, the services built once at
startup (:func:`engine.api.app.create_app`'s lifespan) and the models they load on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.backend import Backend
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.api.image_serving import ImageServer
    from engine.looks.service import LookService
    from engine.search.service import SearchService
    from engine.tuning.weights import TuningStore

# loader names that stand for a service rather than a model (``create_app(loaders=...)``)
SERVICE_NAMES: dict[str, str] = {
    "search_service": "search",
    "looks_service": "looks",
    "tuning": "tuning",
    "images_service": "images",
}


@dataclass
class AppState:
    settings: Settings
    backend: Backend
    # model name -> loader; loaded once on first use (models are heavy: never at startup)
    loaders: dict[str, Callable[[], Any]] = field(default_factory=dict)
    # the services, set by the lifespan (a test may put a stand-in, see :meth:`put`)
    search: SearchService = field(init=False)
    looks: LookService = field(init=False)
    tuning: TuningStore = field(init=False)
    images: ImageServer = field(init=False)
    _loaded: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, name: str) -> Any:
        """The model ``name``, loaded by its loader on the first call (KeyError: no loader)."""
        if name in self._loaded:
            return self._loaded[name]
        with self._lock:
            if name not in self._loaded:
                if name not in self.loaders:
                    raise KeyError(f"no loader registered for {name!r}")
                self._loaded[name] = self.loaders[name]()
            return self._loaded[name]

    def put(self, name: str, value: Any) -> None:
        """Replace a service (``search_service``, ``looks_service``, ``tuning``) or a model."""
        if name in SERVICE_NAMES:
            setattr(self, SERVICE_NAMES[name], value)
        else:
            self._loaded[name] = value
