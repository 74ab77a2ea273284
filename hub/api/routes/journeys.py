"""Journey endpoints: publish definitions (JSON or YAML), enrol, events, instances, staff tasks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Request, status
from sqlmodel import col, select

from hub.api.deps import AdminOnly, ContextDep, RowId, SessionDep, StoreStaff
from hub.models.journeys import (
    DefinitionPublic,
    EnrolRequest,
    EventRequest,
    InstancePublic,
    JourneyDefinition,
    JourneyInstance,
    StaffTask,
    StaffTaskPublic,
    TaskDone,
    TaskState,
)
from hub.services import journeys
from hub.services.auth import scoped_store
from hub.services.errors import Invalid, NotFound

router = APIRouter(prefix="/v1", tags=["journeys"])
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
# A definition is a few kilobytes; a megabyte is a mistake or an attack.
MAX_DEFINITION_BYTES = 1_000_000


async def _body(request: Request) -> bytes:
    """The raw request body (the definition may be JSON or YAML)."""
    return await request.body()


@router.post(
    "/journeys",
    response_model=DefinitionPublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": {"type": "object"}},
        "application/yaml": {"schema": {"type": "string"}},
    }}},
)
def publish_journey(
    ctx: ContextDep, session: SessionDep, _: AdminOnly, raw: Annotated[bytes, Depends(_body)],
    request: Request,
) -> JourneyDefinition:
    """Store a new version of a journey (JSON, or YAML with a YAML content type)."""
    if len(raw) > MAX_DEFINITION_BYTES:
        raise Invalid("definition too large", code="invalid_definition")
    doc = _parse_document(raw, request.headers.get("content-type", ""))
    return journeys.publish(session, doc, ctx.clock.now())


def _parse_document(raw: bytes, content_type: str) -> Any:
    """The body as a JSON or YAML document, or Invalid saying what is wrong with it."""
    try:
        if content_type.split(";")[0].strip() in _YAML_TYPES:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Invalid(
            f"definition is not valid JSON/YAML: {exc}", code="invalid_definition"
        ) from None


@router.get("/journeys", response_model=list[DefinitionPublic])
def list_journeys(session: SessionDep, _: AdminOnly, name: str | None = None
                  ) -> Sequence[JourneyDefinition]:
    """Every stored version (of one journey if ``name`` is given)."""
    return journeys.versions(session, name)


@router.post("/journeys/{name}/instances", response_model=InstancePublic,
             status_code=status.HTTP_201_CREATED, responses=_404)
def enrol(ctx: ContextDep, session: SessionDep, _: AdminOnly, name: str,
          body: EnrolRequest) -> JourneyInstance:
    """Enrol a customer in the latest version of a journey (its entry rule applies)."""
    return journeys.enrol(session, name, body.customer_id, ctx.clock.now(),
                          store_id=body.store_id, context=body.context)


@router.get("/journey-instances/{instance_id}", response_model=InstancePublic, responses=_404)
def get_instance(session: SessionDep, _: AdminOnly, instance_id: str) -> JourneyInstance:
    """An instance with its step history."""
    return journeys.get_instance(session, instance_id)


@router.post("/customers/{customer_id}/events", responses=_404)
def customer_event(ctx: ContextDep, session: SessionDep, _: AdminOnly, customer_id: str,
                   body: EventRequest) -> dict[str, int]:
    """Deliver an event to the customer's running journey instances."""
    touched = journeys.deliver_event(session, customer_id, body.event, ctx.clock.now(),
                                     body.payload, journey=body.journey)
    return {"instances": touched}


@router.get("/stores/{store_id}/tasks", response_model=list[StaffTaskPublic], responses=_404)
def store_tasks(session: SessionDep, principal: StoreStaff, store_id: str
                ) -> Sequence[StaffTask]:
    """Open staff tasks of a store (outbound calls first by due time)."""
    scoped_store(session, principal, store_id)
    return session.exec(
        select(StaffTask)
        .where(StaffTask.store_id == store_id, StaffTask.state == TaskState.OPEN)
        .order_by(col(StaffTask.due_at))
    ).all()


@router.post("/tasks/{task_id}/done", response_model=StaffTaskPublic, responses=_404)
def task_done(ctx: ContextDep, session: SessionDep, principal: StoreStaff, task_id: RowId,
              body: TaskDone) -> StaffTask:
    """Close a task with its outcome."""
    task = session.get(StaffTask, task_id)
    if task is None or task.store_id is None:
        raise NotFound(f"task {task_id} not found")
    scoped_store(session, principal, task.store_id)
    return journeys.close_task(session, task, body.outcome, ctx.clock.now())
