"""Held copies: the paused copy of an in-doubt move, saved when its host stops gracefully.

A source that decided ``committed`` keeps its paused copy until the target confirms (``proto/PROTOCOL.md``
§6.1). When the host stops before that (``Host.stop()``, ``shutdown()``, SIGTERM), the copy's state and
the messages waiting in its mailbox are written here, tied to the transfer, so that the restarted host can
make it the paglet again if the target never ran it, or drop it if the target did
(``paglets/runtime/_move_held.py``).

Layout and format: ``<persistence dir>/held/<transfer id>.rec``, one record file per held copy in the
inactive-record format (``paglets.persistence._recordformat``, ``proto/PROTOCOL.md`` §7), written by a
``RecordStore`` of its own directory: the same atomic write (temporary file, ``fdatasync``, rename,
directory ``fsync``), checksums and quarantine as inactive records. The record's ``agent_id`` field holds
the transfer id (the file's key); the paglet's own id is in its ``metadata`` (``agent_id``). A held copy
is not an inactive paglet: it is never listed, activated or sent messages; only its transfer decides its
fate.

Methods block; the movement engine calls them on its transfer-record thread.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from paglets.core.errors import HostError
from paglets.persistence._quarantine import QuarantineCallback
from paglets.persistence._recordformat import StoredRecord
from paglets.persistence._records import RecordStore

__all__ = ["HELD_DIRECTORY", "HeldCopies"]

#: The directory of held copies under a host's persistence directory.
HELD_DIRECTORY: Final = "held"

_TRANSFER_ID = re.compile(r"^[0-9a-f]{32}\Z")


class HeldCopies:
    """The held copies of one host, keyed by transfer id (see the module docstring)."""

    def __init__(self, root: Path, *, on_quarantine: QuarantineCallback | None = None) -> None:
        self._store = RecordStore(root, on_quarantine=on_quarantine, directory_name=HELD_DIRECTORY)

    def load(self) -> set[str]:
        """The transfer ids of the held copies on disk (corrupt files are quarantined and reported)."""
        self._store.load()
        return {summary.agent_id for summary in self._store.summaries()}

    def close(self) -> None:
        self._store.close()

    def put(self, transfer_id: str, record: StoredRecord) -> None:
        """Write the held copy of ``transfer_id`` durably (``record`` as an inactive record of the paglet)."""
        _check(transfer_id)
        metadata = {**record.metadata, "agent_id": record.agent_id, "transfer_id": transfer_id}
        self._store.write(
            StoredRecord(
                agent_id=transfer_id,
                agent_class=record.agent_class,
                state_class=record.state_class,
                state=record.state,
                policy=record.policy,
                request=record.request,
                deactivated_at=record.deactivated_at,
                registered_files=record.registered_files,
                metadata=metadata,
                queued_messages=record.queued_messages,
            )
        )

    def read(self, transfer_id: str) -> StoredRecord:
        """The held copy as the paglet's inactive record (its own id back in ``agent_id``)."""
        _check(transfer_id)
        stored = self._store.read(transfer_id)
        metadata = dict(stored.metadata)
        agent_id = metadata.pop("agent_id", None)
        metadata.pop("transfer_id", None)
        if not isinstance(agent_id, str) or not agent_id:
            raise HostError(f"held copy of transfer {transfer_id} names no paglet")
        return StoredRecord(
            agent_id=agent_id,
            agent_class=stored.agent_class,
            state_class=stored.state_class,
            state=stored.state,
            policy=stored.policy,
            request=stored.request,
            deactivated_at=stored.deactivated_at,
            registered_files=stored.registered_files,
            metadata=metadata,
            queued_messages=stored.queued_messages,
        )

    def drop(self, transfer_id: str) -> bool:
        """Remove a held copy durably; whether there was one."""
        _check(transfer_id)
        return self._store.delete(transfer_id)

    def __contains__(self, transfer_id: object) -> bool:
        return isinstance(transfer_id, str) and self._store.contains(transfer_id)


def _check(transfer_id: str) -> None:
    if _TRANSFER_ID.match(transfer_id) is None:
        raise HostError(f"invalid transfer id {transfer_id!r}")
