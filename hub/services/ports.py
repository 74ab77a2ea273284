"""Ports the hub's services call out through; the MQTT side implements them on the broker."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from storewave.wire import NodeCommand, NodeConfig


@runtime_checkable
class NodeControl(Protocol):
    """What the registry needs from the broker: node credentials, retained config, commands.

    ``retained_secrets_safe`` is False on amqtt, which leaks retained messages across
    clients whatever the ACL says: the registry then leaves ``beacon`` (the key) out of the
    retained config and sends it in a non-retained ``set_beacon`` command instead.
    """

    @property
    def retained_secrets_safe(self) -> bool:
        """Whether a retained message is readable only by the node it is addressed to."""
        ...

    def set_credentials(self, node_id: str, password: str) -> None:
        """Create or replace the node's MQTT password (the node id is the username)."""
        ...

    def revoke(self, node_id: str) -> None:
        """Remove the node's MQTT credentials and retained config."""
        ...

    def publish_config(self, node_id: str, config: NodeConfig) -> None:
        """Publish ``config`` retained on the node's config topic (QoS 1)."""
        ...

    def send_command(self, node_id: str, command: NodeCommand) -> None:
        """Publish ``command`` (not retained, QoS 1) on the node's cmd topic."""
        ...


class NullNodeControl:
    """A NodeControl for a hub that runs without a broker (API-only): does nothing, says so."""

    retained_secrets_safe = False

    def set_credentials(self, node_id: str, password: str) -> None:
        """No broker: the password is only returned to the caller."""

    def revoke(self, node_id: str) -> None:
        """No broker: nothing to revoke."""

    def publish_config(self, node_id: str, config: NodeConfig) -> None:
        """No broker: the config is kept in the database only."""

    def send_command(self, node_id: str, command: NodeCommand) -> None:
        """No broker: the command is dropped."""
