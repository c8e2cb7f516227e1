"""Small paglet classes that the launch-config tests name in ``class = "_launch_classes:..."``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from paglets.config.startup import AutoStartSpec
from paglets.core.agent import Paglet, PagletState
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.contracts import ServiceContract, ServiceOperation
from paglets.services.resident import ResidentServiceSpec


@dataclass
class Ping:
    text: str = ""


INFO = ServiceContract("test-info", (ServiceOperation("info", reply_type=Ping),))
ECHO = ServiceContract("test-echo", (ServiceOperation("echo", request_type=Ping, reply_type=Ping),))
SPACED = ServiceContract("bad name", (ServiceOperation("info", reply_type=Ping),))


@dataclass
class ServiceState(PagletState):
    greeting: str = "hello"
    count: int = 0
    service_scope: str = "local"


class InfoService(Paglet[ServiceState]):
    State = ServiceState
    RESIDENT_SERVICES = (
        ResidentServiceSpec(
            INFO,
            scope=ServiceScope.MESH,
            lifecycle=ResidentLifecycle.EAGER,
            idle_timeout=5.0,
            state={"greeting": "spec"},
        ),
    )


class TwoServices(Paglet[ServiceState]):
    State = ServiceState
    RESIDENT_SERVICES = (
        ResidentServiceSpec(INFO, agent_id="two.info"),
        ResidentServiceSpec(ECHO, singleton=False),
    )


class NoServices(Paglet[ServiceState]):
    State = ServiceState


class WrongServices(Paglet[ServiceState]):
    State = ServiceState
    RESIDENT_SERVICES = ("server-info",)


class SpacedService(Paglet[ServiceState]):
    State = ServiceState
    RESIDENT_SERVICES = (ResidentServiceSpec(SPACED),)


class NotAPaglet:
    pass


@dataclass
class WatchState(PagletState):
    interval: float = 1.0
    label: str = ""
    tags: list[str] = field(default_factory=list)


class Watcher(Paglet[WatchState]):
    State = WatchState
    AUTO_START = AutoStartSpec(
        agent_id="watcher", state={"interval": 5.0, "label": "auto"}, init={"from": "auto"}
    )


class Plain(Paglet[WatchState]):
    State = WatchState


class Dormant(Paglet[WatchState]):
    State = WatchState
    AUTO_START = AutoStartSpec(enabled=False, singleton=False)


class WrongAutoStart(Paglet[WatchState]):
    State = WatchState
    AUTO_START: ClassVar[object] = {"agent_id": "x"}
