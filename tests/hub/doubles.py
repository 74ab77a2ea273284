"""Test double of the NodeControl port: records what the registry asked the broker to do."""

from __future__ import annotations

from dataclasses import dataclass, field

from storewave.wire import NodeCommand, NodeConfig


@dataclass
class RecordingNodeControl:
    """In-memory NodeControl: keeps credentials, the latest retained config and commands.

    The real implementation (the managed broker) lives in ``hub.mqtt`` and is tested
    against real Mosquitto there; this double only stands in for the port in API tests.
    """

    retained_secrets_safe: bool = True
    passwords: dict[str, str] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)
    configs: dict[str, list[NodeConfig]] = field(default_factory=dict)
    commands: dict[str, list[NodeCommand]] = field(default_factory=dict)

    def set_credentials(self, node_id: str, password: str) -> None:
        """Remember the node's current password."""
        self.passwords[node_id] = password

    def revoke(self, node_id: str) -> None:
        """Forget the node's password."""
        self.passwords.pop(node_id, None)
        self.revoked.append(node_id)

    def publish_config(self, node_id: str, config: NodeConfig) -> None:
        """Append to the node's published configs (the last one is the retained one)."""
        self.configs.setdefault(node_id, []).append(config)

    def send_command(self, node_id: str, command: NodeCommand) -> None:
        """Append to the node's commands."""
        self.commands.setdefault(node_id, []).append(command)
