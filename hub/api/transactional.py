"""A route class that commits the request's session inside the endpoint's own threadpool call.

FastAPI runs a sync endpoint and the teardown of its ``yield`` dependencies in separate
threadpool calls. On SQLite every transaction holds the write lock (``BEGIN IMMEDIATE``,
see ``hub.db``), so a lock kept from the endpoint until a later teardown call can starve
the pool: the threads waiting for the lock are the ones the teardown needs. Committing
(or rolling back) before the endpoint returns releases the lock in the same call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlmodel import Session

# The parameter name routes give their ``SessionDep``.
SESSION_PARAM = "session"


def commit_in_call(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a sync endpoint taking ``session`` so it commits or rolls back before returning."""
    if inspect.iscoroutinefunction(endpoint):
        return endpoint
    if SESSION_PARAM not in inspect.signature(endpoint).parameters:
        return endpoint

    @functools.wraps(endpoint)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session: Session | None = kwargs.get(SESSION_PARAM)
        try:
            result = endpoint(*args, **kwargs)
        except BaseException:
            if session is not None:
                session.rollback()
            raise
        if session is not None:
            session.commit()
        return result

    return wrapper


class TransactionalRoute(APIRoute):
    """An APIRoute whose sync endpoint commits its session in the same threadpool call."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Wrap ``endpoint`` with :func:`commit_in_call`, then build the route as usual."""
        super().__init__(path, commit_in_call(endpoint), **kwargs)
