"""The fallback broker: amqtt in its own process, authentication and per-node ACL required.

Used only when Mosquitto is not installed. amqtt 0.12 has no MQTT 5 (so no shared
subscriptions) and delivers retained messages to any subscriber whatever the ACL, so
:attr:`AmqttBroker.retained_secrets_safe` is False and the hub keeps secrets out of
retained messages. Run as ``python -m hub.mqtt.amqtt_broker --port N --password-file F``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from amqtt.broker import Broker as _AmqttCore
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from hub.mqtt.broker import LOOPBACK, ManagedBroker
from hub.mqtt.credentials import HUB_USERNAME, node_may, read_password_file, verify_password

log = logging.getLogger(__name__)

# The importable name of this module: when run with ``-m`` ``__name__`` is ``__main__``,
# but amqtt loads plugins by dotted path.
_MODULE = "hub.mqtt.amqtt_broker"


class NodeAuthPlugin(BaseAuthPlugin):
    """Checks username/password against the shared ``$7$`` password file (re-read on change).

    A node must also use its node id as client id, so it cannot take over another
    node's session.
    """

    @dataclass
    class Config:
        """Where the password file is."""

        password_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        """Remember the file; it is read lazily and again whenever it changes."""
        super().__init__(context)
        self._path = Path(self.config.password_file)
        self._mtime_ns = -1
        self._users: dict[str, str] = {}

    def _current_users(self) -> dict[str, str]:
        """The accounts, re-read when the file's mtime changed (the hub rewrote it)."""
        try:
            mtime = self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if mtime != self._mtime_ns:
            self._users = read_password_file(self._path)
            self._mtime_ns = mtime
        return self._users

    async def authenticate(self, *, session: Session) -> bool | None:
        """True only for a known user with the right password (and client id for nodes)."""
        username = session.username or ""
        encoded = self._current_users().get(username)
        if not encoded or not verify_password(session.password or "", encoded):
            return False
        return username == HUB_USERNAME or session.client_id == username


class NodeTopicPlugin(BaseTopicPlugin):
    """The Mosquitto ACL's rules: a node touches only its own subtree; the hub all of it."""

    @dataclass
    class Config:
        """No options: the rules are fixed by the topic tree."""

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        """Allow ``action`` on ``topic`` only if :func:`node_may` says so."""
        if session is None or not session.username or topic is None:
            return False
        return node_may(session.username, topic, write=action == Action.PUBLISH)


def broker_config(port: int, password_file: Path) -> dict[str, object]:
    """amqtt's configuration: one loopback listener, our auth and topic plugins only."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
        "plugins": {
            f"{_MODULE}.NodeAuthPlugin": {"password_file": str(password_file)},
            f"{_MODULE}.NodeTopicPlugin": {},
        },
    }


async def _serve(port: int, password_file: Path) -> None:
    """Run the broker until SIGTERM/SIGINT."""
    core = _AmqttCore(broker_config(port, password_file))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await core.start()
    log.info("amqtt listening", extra={"port": port})
    await stop.wait()
    await core.shutdown()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the broker child process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    asyncio.run(_serve(args.port, args.password_file))


class AmqttBroker(ManagedBroker):
    """amqtt run by the hub in a child process (fallback when Mosquitto is missing)."""

    name = "amqtt"
    retained_secrets_safe = False
    supports_mqtt5 = False

    def _command(self) -> list[str]:
        """This module as a script, on the chosen port and the shared password file."""
        return [
            sys.executable,
            "-m",
            _MODULE,
            "--port",
            str(self._port),
            "--password-file",
            str(self.credentials.password_file),
        ]


if __name__ == "__main__":
    main()
