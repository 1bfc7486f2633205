"""Typed FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from engine.api.state import AppState
from engine.backend import Backend
from engine.settings import Settings


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.outfit
    return state


def get_settings(state: Annotated[AppState, Depends(get_state)]) -> Settings:
    return state.settings


def get_backend(state: Annotated[AppState, Depends(get_state)]) -> Backend:
    return state.backend


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BackendDep = Annotated[Backend, Depends(get_backend)]
