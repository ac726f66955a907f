"""Status, pause, resume and reload over NATS, as a NATS micro service `nats micro` finds."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import Error as NATSError
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service, ServiceConfig

from prometheus_streams import __version__
from prometheus_streams.config import ManagementConfig
from prometheus_streams.role import Role
from prometheus_streams.transport import Connection
from prometheus_streams.wire import escape_token

log = logging.getLogger(__name__)

SERVICE_NAME = "prometheus-streams"
ACTIONS = ("status", "pause", "resume", "reload")


def instance_subject(prefix: str, role: str, identity: str, action: str) -> str:
    """The subject reaching one instance: <prefix>.<role>.<identity>.<action>."""
    return f"{prefix}.{role}.{escape_token(identity)}.{action}"


def all_subject(prefix: str, action: str) -> str:
    """The subject reaching every instance at once: <prefix>.all.<action>."""
    return f"{prefix}.all.{action}"


def act(role: Role, action: str, who: str) -> dict[str, Any]:
    """Carry out an action and describe the result (shared by NATS and HTTP)."""
    changed = False
    if action == "reload":
        # A rejected config is answered with its errors; the running one stays.
        return {"action": action, **role.reload_from_file(who), "status": role.status()}
    if action == "pause":
        changed = role.pause(who)
    elif action == "resume":
        changed = role.resume(who)
    return {"action": action, "changed": changed, "status": role.status()}


class Management:
    """Serves the management endpoints on a NATS connection."""

    def __init__(self, config: ManagementConfig, role_name: str, identity: str) -> None:
        self.config = config
        self.role_name = role_name
        self.identity = identity
        self._service: Service | None = None

    async def run(self, stream_conn: Connection, role: Role) -> None:
        """Serve until cancelled, on the role's connection or on `brokers` if set."""
        if not self.config.enabled:
            return
        own: Connection | None = None
        conn = stream_conn
        if self.config.brokers:
            # Same auth as the role's stream; TLS from management.tls or the top level.
            settings = dataclasses.replace(
                stream_conn.config, urls=self.config.brokers, tls=self.config.tls
            )
            # Its figures go on the role's /metrics beside the stream's, labelled apart.
            own = Connection(
                settings,
                "management",
                f"{stream_conn.name} management",
                None,
                kind="management",
                metrics=stream_conn.metrics,
            )
            conn = own
            await own.connect()
        assert conn.nc is not None
        try:
            await self.start(conn.nc, role)
            await asyncio.Event().wait()  # until cancelled at shutdown
        except (NATSError, TimeoutError, ValueError) as exc:
            log.error("management over NATS unavailable: %s", exc)
        finally:
            await self.stop()
            if own is not None:
                await own.close()

    async def start(self, nc: NATS, role: Role) -> None:
        """Register the service and its endpoints."""
        prefix = self.config.subject_prefix
        self._service = await add_service(
            nc,
            ServiceConfig(
                name=SERVICE_NAME,
                version=__version__,
                description="prometheus-streams poller/receiver management",
                metadata={"role": self.role_name, "identity": self.identity},
            ),
        )
        # One queue group per instance: its own subjects reach only it, and the
        # `all` subjects reach every instance (each in a group of its own).
        own_group = f"{prefix}.{self.role_name}.{escape_token(self.identity)}"
        all_group = f"{own_group}.{uuid.uuid4().hex}"
        for action in ACTIONS:
            handler = self._handler(role, action)
            await self._service.add_endpoint(
                EndpointConfig(
                    name=action,
                    subject=instance_subject(prefix, self.role_name, self.identity, action),
                    queue_group=own_group,
                    handler=handler,
                )
            )
            await self._service.add_endpoint(
                EndpointConfig(
                    name=f"all-{action}",
                    subject=all_subject(prefix, action),
                    queue_group=all_group,
                    handler=handler,
                )
            )
        log.info(
            "management on NATS: %s.<action> and %s.<action>",
            own_group,
            f"{prefix}.all",
        )

    def _handler(self, role: Role, action: str) -> Any:
        async def handle(request: Request) -> None:
            result = act(role, action, f"NATS request on {request.subject}")
            result.update(role=self.role_name, identity=self.identity)
            await request.respond(json.dumps(result, default=str).encode())

        return handle

    async def stop(self) -> None:
        """Unregister the service."""
        if self._service is not None:
            await self._service.stop()
            self._service = None
