"""What an email of each kind says: a renderer per kind, registered by the app that knows its
subject (web/notifications.py registers them all in `WebConfig.ready`). The lower apps only name
a kind and the ids it is about, so the layers stay as they are (docs/architecture.md).

A renderer takes the outbox row and returns the templates' context, or None when there is
nothing to say any more (the session is gone); the row is then skipped.
"""

from __future__ import annotations

from collections.abc import Callable

Renderer = Callable[..., "dict | None"]

_renderers: dict[str, Renderer] = {}


def register(kind: str) -> Callable[[Renderer], Renderer]:
    def decorator(fn: Renderer) -> Renderer:
        _renderers[kind] = fn
        return fn

    return decorator


def renderer_for(kind: str) -> Renderer | None:
    return _renderers.get(kind)
