"""Typed FastAPI dependencies: what a route may ask for (built once, in the app's lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from engine.api.state import AppState
from engine.backend import Backend
from engine.looks.service import LookService
from engine.search.service import SearchService
from engine.settings import Settings
from engine.tuning.weights import TuningStore


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.outfit
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_backend(state: StateDep) -> Backend:
    return state.backend


def get_search(state: StateDep) -> SearchService:
    return state.search


def get_looks(state: StateDep) -> LookService:
    return state.looks


def get_tuning(state: StateDep) -> TuningStore:
    return state.tuning


SettingsDep = Annotated[Settings, Depends(get_settings)]
BackendDep = Annotated[Backend, Depends(get_backend)]
SearchDep = Annotated[SearchService, Depends(get_search)]
LooksDep = Annotated[LookService, Depends(get_looks)]
TuningDep = Annotated[TuningStore, Depends(get_tuning)]
