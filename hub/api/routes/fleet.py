"""Nodes, beacons and alerts: provisioning, credentials, config republishing, commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from hub.api.deps import BeaconShortId, ContextDep, FleetManagers, FleetReaders, RowId, SessionDep
from hub.api.transactional import TransactionalRoute
from hub.models.registry import (
    Alert,
    AlertPublic,
    Beacon,
    BeaconCreate,
    BeaconPublic,
    BeaconUpdate,
    Node,
    NodeCreate,
    NodeCredentials,
    NodePublic,
    NodeUpdate,
)
from hub.services import provisioning, registry
from hub.services.errors import Invalid
from storewave.wire import CommandName, NodeCommand

router = APIRouter(prefix="/v1", tags=["fleet"], route_class=TransactionalRoute)
_404 = {404: {"description": "Not found, or outside the caller's scope"}}
# A command a node has not picked up within this time is stale (the installer retries).
COMMAND_TTL = timedelta(minutes=5)


class CommandRequest(BaseModel):
    """A command for a node (self-test, emit now); ``set_beacon`` is the hub's own."""

    model_config = {"json_schema_extra": {"examples": [{"cmd": "self_test"}]}}
    cmd: CommandName
    args: dict[str, float | int | str | bool] = Field(default_factory=dict)


def _credentials(node: Node, password: str) -> NodeCredentials:
    """The one-time credentials response."""
    public = NodePublic.model_validate(node, from_attributes=True)
    return NodeCredentials(node=public, mqtt_username=node.id, mqtt_password=password)


@router.get("/nodes", response_model=list[NodePublic])
def list_nodes(
    session: SessionDep, principal: FleetReaders, store_id: str | None = None
) -> Sequence[Node]:
    """Nodes of the stores in scope, with state and last-seen."""
    return registry.list_nodes(session, principal, store_id)


@router.post("/nodes", response_model=NodeCredentials, status_code=status.HTTP_201_CREATED)
def provision_node(
    ctx: ContextDep, session: SessionDep, principal: FleetManagers, body: NodeCreate
) -> NodeCredentials:
    """Provision a node: returns its MQTT password ONCE and publishes its retained config."""
    registry.check_store_in_scope(session, principal, body.store_id)
    node, password = provisioning.provision_node(
        session, ctx.crypto, ctx.clock, ctx.node_control, body
    )
    return _credentials(node, password)


@router.get("/nodes/{node_id}", response_model=NodePublic, responses=_404)
def get_node(session: SessionDep, principal: FleetReaders, node_id: str) -> Node:
    """One node."""
    return registry.scoped_node(session, principal, node_id)


@router.patch("/nodes/{node_id}", response_model=NodePublic, responses=_404)
def move_node(
    ctx: ContextDep, session: SessionDep, principal: FleetManagers, node_id: str, body: NodeUpdate
) -> Node:
    """Move a node to another store or zone (both must be in scope)."""
    node = registry.scoped_node(session, principal, node_id)
    if body.store_id is not None:
        registry.check_store_in_scope(session, principal, body.store_id)
    return provisioning.move_node(session, ctx.crypto, ctx.clock, ctx.node_control, node, body)


@router.post("/nodes/{node_id}/credentials", response_model=NodeCredentials, responses=_404)
def reset_credentials(
    ctx: ContextDep, session: SessionDep, principal: FleetManagers, node_id: str
) -> NodeCredentials:
    """Issue a new MQTT password (returned once); the old one stops working."""
    node = registry.scoped_node(session, principal, node_id)
    password = provisioning.reset_credentials(session, ctx.crypto, ctx.node_control, node)
    return _credentials(node, password)


@router.delete("/nodes/{node_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_404)
def revoke_node(
    ctx: ContextDep, session: SessionDep, principal: FleetManagers, node_id: str
) -> Response:
    """Revoke a node's broker access (its history stays)."""
    node = registry.scoped_node(session, principal, node_id)
    provisioning.revoke_node(session, ctx.node_control, node)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/nodes/{node_id}/commands",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_404, 422: {"description": "set_beacon is reserved for the hub"}},
)
def send_command(
    ctx: ContextDep,
    session: SessionDep,
    principal: FleetManagers,
    node_id: str,
    body: CommandRequest,
) -> dict[str, str]:
    """Send a command (self-test, emit now, flush queue) to a node."""
    node = registry.scoped_node(session, principal, node_id)
    if body.cmd is CommandName.SET_BEACON:
        raise Invalid("set_beacon is sent by the hub itself when a key changes")
    command = NodeCommand(cmd=body.cmd, expires_at=ctx.clock.now() + COMMAND_TTL, args=body.args)
    ctx.node_control.send_command(node.id, command)
    return {"command_id": str(command.id)}


@router.get("/beacons", response_model=list[BeaconPublic])
def list_beacons(
    session: SessionDep, principal: FleetReaders, store_id: str | None = None
) -> Sequence[Beacon]:
    """Beacons of the stores in scope (never their keys)."""
    return registry.list_beacons(session, principal, store_id)


@router.post("/beacons", response_model=BeaconPublic, status_code=status.HTTP_201_CREATED)
def create_beacon(
    ctx: ContextDep, session: SessionDep, principal: FleetManagers, body: BeaconCreate
) -> Beacon:
    """Give a node a beacon (fresh key, output level from the range) and republish."""
    registry.scoped_node(session, principal, body.node_id)
    return provisioning.create_beacon(session, ctx.crypto, ctx.clock, ctx.node_control, body)


@router.get("/beacons/{short_id}", response_model=BeaconPublic, responses=_404)
def get_beacon(session: SessionDep, principal: FleetReaders, short_id: BeaconShortId) -> Beacon:
    """One beacon."""
    return registry.scoped_beacon(session, principal, short_id)


@router.patch("/beacons/{short_id}", response_model=BeaconPublic, responses=_404)
def change_range(
    ctx: ContextDep,
    session: SessionDep,
    principal: FleetManagers,
    short_id: BeaconShortId,
    body: BeaconUpdate,
) -> Beacon:
    """Change a beacon's range (3-10 m); the node gets a new config version."""
    beacon = registry.scoped_beacon(session, principal, short_id)
    return provisioning.change_range(
        session, ctx.crypto, ctx.clock, ctx.node_control, beacon, body.range_m
    )


@router.post("/beacons/{short_id}/rotate", response_model=BeaconPublic, responses=_404)
def rotate_key(
    ctx: ContextDep, session: SessionDep, principal: FleetManagers, short_id: BeaconShortId
) -> Beacon:
    """Rotate a beacon's key; the node gets a new config version."""
    beacon = registry.scoped_beacon(session, principal, short_id)
    return provisioning.rotate_key(session, ctx.crypto, ctx.clock, ctx.node_control, beacon)


@router.get("/alerts", response_model=list[AlertPublic])
def list_alerts(
    session: SessionDep, principal: FleetReaders, open_only: bool = True
) -> Sequence[Alert]:
    """Alerts about the stores in scope (unknown-node alerts: admin only)."""
    return registry.list_alerts(session, principal, open_only)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertPublic, responses=_404)
def resolve_alert(
    ctx: ContextDep, session: SessionDep, principal: FleetReaders, alert_id: RowId
) -> Alert:
    """Mark an alert handled."""
    alert = registry.scoped_alert(session, principal, alert_id)
    if alert.resolved_at is None:
        alert.resolved_at = ctx.clock.now()
        session.add(alert)
    return alert
