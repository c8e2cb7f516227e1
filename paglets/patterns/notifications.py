"""Telling the user something from a paglet, without ever failing because of it.

:meth:`NotificationMixin.notify_user_info` sends one notification to a ``user-info`` service (see
:mod:`paglets.services.builtin.user_info`), which prints it on its host's console and keeps it for
``paglets user-info``. Which service: the one on the host :meth:`NotificationMixin.user_info_host_url`
names (override it, e.g. to return the URL of the host where the user started the work); otherwise
this host's own, otherwise any in ``scope``. Every failure (no service, a timeout, a refused call) is
swallowed: the method returns False and the paglet carries on.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

from paglets.core.runtime_values import ServiceScope
from paglets.services.builtin.user_info import (
    NOTIFY_USER,
    USER_INFO,
    USER_INFO_AGENT_ID,
    UserInfoRequest,
)

__all__ = ["NotificationMixin", "NotificationSeverity"]


class NotificationSeverity(Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class NotificationMixin:
    """Best-effort notifications to ``user-info`` (see the module docstring); mix into a ``Paglet``."""

    def user_info_host_url(self) -> str:
        """URL of the host whose ``user-info`` should get this paglet's notifications ("" = look it up)."""
        return ""

    def notify_user_info(
        self,
        severity: NotificationSeverity,
        title: str,
        message: str,
        *,
        job_id: str = "",
        timeout: float = 2.0,
        scope: ServiceScope = ServiceScope.MESH,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        """Send one notification; True when a ``user-info`` service took it, False on any failure."""
        me: Any = self
        try:
            level = severity.value if isinstance(severity, NotificationSeverity) else str(severity)
            request = UserInfoRequest(
                severity=level,
                title=str(title),
                message=str(message),
                source_agent_id=str(getattr(me, "agent_id", "")),
                job_id=str(job_id),
                timestamp=time.time(),
                metadata={str(k): str(v) for k, v in (metadata or {}).items()},
            )
            seconds = max(0.1, float(timeout))
            home = self.user_info_host_url()
            if home:
                proxy = me.context.get_proxy(USER_INFO_AGENT_ID, home)
                proxy.send(NOTIFY_USER.to_message(request), timeout=seconds)
                return True
            handle = me.lookup_contract(USER_INFO, operation=NOTIFY_USER, scope=ServiceScope.LOCAL)
            if handle is None and ServiceScope(scope) is not ServiceScope.LOCAL:
                handle = me.lookup_contract(USER_INFO, operation=NOTIFY_USER, scope=scope)
            if handle is None:
                return False
            handle.call(NOTIFY_USER, request, timeout=seconds)
            return True
        except Exception:
            return False
