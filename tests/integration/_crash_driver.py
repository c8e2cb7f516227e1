"""Helpers of the host crash-consistency test (``test_crash_consistency.py``).

- ``KillableHost`` starts a ``paglets-host`` CLI process on a persistence directory, with a random marker
  in its environment: the zygote and every paglet process inherit it, so ``marked_processes`` finds all
  of them after the host is gone, even those forked after any snapshot of its process tree.
- ``PagletModel`` is what the test knows about one paglet, and ``outcomes`` the states it may be found
  in after a SIGKILL of its host.
- ``SlotDriver`` drives one paglet at a time over HTTP with random operations (create, ``add`` to an
  active paglet, deactivate, queue a message while inactive, activate) until the host dies.

The model follows the runtime's crash semantics (contract §5.7, ``paglets/runtime/_persistence.py``):

- Only inactive records are durable. Deactivation writes the record before its reply; activation
  deletes it (after ``run()`` started) before its reply. An active paglet dies with its host, with its
  state and its mailbox: after the restart it is *absent*, never back from an older record.
- A paglet's ``value`` is ``count`` plus the number of queued ``add`` messages (each ``n=1``): queueing
  adds one to it, activation keeps it (the queue is drained into ``count``), deactivation keeps it (the
  messages the paglet has not received yet go into the new record, in the same write as the state).
  So a paglet found after a restart must have exactly the value of its last acknowledged operation, or,
  for the one operation in flight at the kill, the value (and presence) either before or after that
  operation. A queued message applied twice or lost changes the value and is caught at the next
  deactivation that is verified.
- After an activation a driver sometimes waits until the queued messages are applied (``count``
  reaches the value; the ``add`` replies are then exact) and sometimes goes on at once, so that
  deactivations and kills also land in the middle of a drain.
"""

from __future__ import annotations

import contextlib
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from paglets.core.messages import Message
from paglets.remote.client import HostClient

HERE = Path(__file__).resolve().parent

#: Environment variable carrying a host's marker into its zygote and paglet processes.
MARKER_ENV: Final = "PAGLETS_CRASH_TEST_MARKER"
#: Seconds a host may take to print its banner (about 0.5 s here; a loaded CI machine is slower).
READY_TIMEOUT: Final = 60.0
#: Seconds one HTTP call of the driver may take; a call cut by the kill fails at once (reset or refused).
CALL_TIMEOUT: Final = 20.0
#: Share of deactivations whose policy also says ``activate_on_startup`` (they come back active).
STARTUP_SHARE: Final = 0.3
#: Chance that an inactive paglet gets a queued message (else it is activated) in one step.
APPEND_SHARE: Final = 0.65
#: Chance that an active paglet gets an ``add`` (else it is deactivated) in one step.
ADD_SHARE: Final = 0.5
#: Operations remembered per paglet for failure messages.
HISTORY: Final = 40
#: Chance that a queued message is sent oneway (the reply is then ``None``, not ``{"queued": true}``).
ONEWAY_SHARE: Final = 0.3

#: Chance that a driver waits, after an acknowledged activation, until the queue drained into the paglet
#: is applied before its next operation; otherwise the next ``add`` or deactivation overlaps the drain
#: (the deactivation must then write the undelivered messages into the record in the same write).
DRAIN_WAIT_SHARE: Final = 0.5
#: Seconds a drain may take, and the polling interval while waiting for it.
DRAIN_TIMEOUT: Final = 30.0
DRAIN_POLL: Final = 0.002

PAGLET_CLASS: Final = "_paglets:Counter"
QUEUEING_POLICY: Final = {"activate_on_message": False, "queue_messages_when_inactive": True}

Operation = Literal["create", "add", "deactivate", "append", "activate"]
#: ``None``: the paglet is gone; an ``int``: it is present with this value (count + queued messages).
Outcome = int | None


# --- the host process ------------------------------------------------------------------------------------


class KillableHost:
    """A ``paglets-host`` CLI process on ``directory`` (port 0: a fresh port at every start)."""

    def __init__(self, directory: Path, log: Path, *, name: str = "crash") -> None:
        self.marker = uuid.uuid4().hex
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        env[MARKER_ENV] = self.marker
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paglets.cli.host",
                "--name",
                name,
                "--port",
                "0",
                "--persistence-dir",
                str(directory),
                "--mesh-version",
                "crash-test",
                "--no-launch-config",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        try:
            banner = read_line(self.proc, READY_TIMEOUT)
            if " serving on " not in banner:
                raise AssertionError(f"host did not start: {banner!r}; log: {log.read_text()[-3000:]}")
        except BaseException:
            self.close()
            raise
        self.url = banner.split(" serving on ")[1].split()[0]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the host process (its zygote and paglets die with it: ``PR_SET_PDEATHSIG``)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def close(self, timeout: float = 30.0) -> None:
        """Kill the host if it still runs, reap it and close its pipes."""
        self.kill()
        self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line ``proc`` prints on stdout, within ``timeout`` seconds ('' if it exits first)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = bytearray()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line from pid {proc.pid} within {timeout} s: {bytes(data)!r}")
            if not selector.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace")


def marked_processes(marker: str) -> set[int]:
    """Pids of live (not zombie) processes whose environment carries ``marker`` (from /proc)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:  # gone meanwhile, or not ours
            continue
        if needle in environ.split(b"\0"):
            found.add(int(entry))
    return found


def alive(pids: Iterable[int]) -> set[int]:
    """Those of ``pids`` that are still running (zombies count as dead)."""
    living: set[int] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            living.add(pid)
    return living


# --- the model ---------------------------------------------------------------------------------------------


@dataclass
class PagletModel:
    """One paglet as its acknowledged operations left it (see the module docstring)."""

    agent_id: str
    value: int = 0
    active: bool = True
    #: The operation that was sent but not acknowledged when the host died (at most one per paglet).
    in_flight: Operation | None = None
    #: Messages queued in its record, as last observed (known exactly after a verified restart).
    queued: int | None = None
    #: Active and known to have applied every message queued before its activation.
    drained: bool = False
    #: The last ``HISTORY`` operations and observations, for failure messages.
    history: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.history.append(what)
        del self.history[:-HISTORY]

    def outcomes(self) -> frozenset[Outcome]:
        """What a restarted host may show for this paglet."""
        settled: Outcome = None if self.active else self.value
        match self.in_flight:
            case None | "add":  # an add only ever goes to an active paglet, which is lost anyway
                return frozenset({settled})
            case "append":  # the message is queued, or not
                return frozenset({self.value, self.value + 1})
            case "activate" | "deactivate":  # the record is still there / not yet there, or the reverse
                return frozenset({self.value, None})
            case "create":
                raise AssertionError("a paglet being created has no model yet")


@dataclass
class Slot:
    """One driver's paglet (``None`` when it has none: a new one is created)."""

    index: int
    paglet: PagletModel | None = None
    #: Operations acknowledged by kind, over the whole test.
    done: dict[str, int] = field(default_factory=dict)
    #: Operations in flight at a kill, by kind, over the whole test.
    cut: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _Stopped(Exception):
    """The host died while the driver waited for something that is not an operation of the model."""


class SlotDriver:
    """Random operations on one slot's paglet until ``dying`` is set (the host is being killed).

    An error while the host is alive is a test failure (recorded in ``slot.problems``); an error once
    ``dying`` is set is the kill cutting the call: the operation stays ``in_flight``.
    """

    def __init__(self, slot: Slot, url: str, rng: random.Random, dying: threading.Event) -> None:
        self.slot = slot
        self.url = url
        self.rng = rng
        self.dying = dying
        self.client = HostClient(timeout=CALL_TIMEOUT)

    def run(self) -> None:
        slot = self.slot
        try:
            while not self.dying.is_set():
                operation = self._next()
                try:
                    self._apply(operation)
                except _Stopped:
                    return
                except Exception as exc:
                    if not self.dying.is_set():
                        slot.problems.append(f"slot {slot.index}: {operation} failed on a live host: {exc!r}")
                        return
                    slot.cut[operation] = slot.cut.get(operation, 0) + 1
                    if slot.paglet is not None and operation != "create":
                        slot.paglet.note(f"{operation} cut by the kill")
                    return
                slot.done[operation] = slot.done.get(operation, 0) + 1
        finally:
            self.client.close()

    def _next(self) -> Operation:
        paglet = self.slot.paglet
        if paglet is None:
            return "create"
        if paglet.active:
            return "add" if self.rng.random() < ADD_SHARE else "deactivate"
        return "append" if self.rng.random() < APPEND_SHARE else "activate"

    def _apply(self, operation: Operation) -> None:
        if operation == "create":
            reply = self.client.post_json(self.url + "/agents", {"agent_class_name": PAGLET_CLASS})
            self.slot.paglet = PagletModel(reply["proxy"]["agent_id"])
            self.slot.paglet.note("created")
            return
        paglet = self.slot.paglet
        assert paglet is not None
        paglet.in_flight = operation
        base = f"{self.url}/agents/{paglet.agent_id}"
        detail: str = operation
        if operation == "add":
            result = self.client.post_json(base + "/messages", {"message": _add()})["result"]
            paglet.value += 1
            # while the queue drained at activation may still be running the count can be below the
            # value, never above; once it is through, the reply is exact
            below = isinstance(result, int) and result < paglet.value
            ok = result == paglet.value or (below and not paglet.drained)
            self._check(ok, f"add answered {result!r}, value {paglet.value}")
            detail = f"add (count {result})"
        elif operation == "deactivate":
            policy = dict(QUEUEING_POLICY, activate_on_startup=self.rng.random() < STARTUP_SHARE)
            self.client.post_json(base + "/deactivate", {"request": {"policy": policy}})
            paglet.active, paglet.queued, paglet.drained = False, None, False
            detail = f"deactivate (startup: {policy['activate_on_startup']})"
        elif operation == "append":
            oneway = self.rng.random() < ONEWAY_SHARE
            reply = self.client.post_json(base + "/messages", {"message": _add(), "oneway": oneway})
            result = reply["result"]
            paglet.value += 1
            if paglet.queued is not None:
                paglet.queued += 1
            ok = result is None if oneway else isinstance(result, dict) and result.get("queued") is True
            self._check(ok, f"queued message (oneway={oneway}) answered {result!r}")
            detail = f"append (oneway: {oneway})"
        elif operation == "activate":
            self.client.post_json(base + "/activate", {})
            paglet.active, paglet.queued = True, None
        paglet.in_flight = None
        paglet.note(f"{detail} -> {paglet.value}")
        if operation == "activate" and self.rng.random() < DRAIN_WAIT_SHARE:
            self._await_drain(paglet)

    def _await_drain(self, paglet: PagletModel) -> None:
        """Poll until the queue drained at activation is applied (``count`` reaches the value)."""
        url = f"{self.url}/agents/{paglet.agent_id}/state"
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            try:
                count = self.client.get_json(url)["state"]["count"]
            except Exception:
                if self.dying.is_set():
                    raise _Stopped from None
                raise
            if count >= paglet.value or time.monotonic() > deadline:
                self._check(count == paglet.value, f"drained to {count}, value {paglet.value}")
                paglet.drained = True
                paglet.note("drained")
                return
            if self.dying.wait(DRAIN_POLL):
                raise _Stopped

    def _check(self, ok: bool, what: str) -> None:
        if not ok:
            self.slot.problems.append(f"slot {self.slot.index}: {what}")


def _add() -> dict[str, Any]:
    return Message("add", {"n": 1}).to_wire()


def start_drivers(
    slots: list[Slot], url: str, rng: random.Random, dying: threading.Event
) -> list[threading.Thread]:
    """One thread per slot, each with its own client and random stream."""
    threads = []
    for slot in slots:
        driver = SlotDriver(slot, url, random.Random(rng.getrandbits(64)), dying)
        thread = threading.Thread(target=driver.run, name=f"crash-driver-{slot.index}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def join_all(threads: Iterable[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            raise AssertionError(f"{thread.name} still runs {timeout} s after the kill")


def suppress_close(host: KillableHost | None) -> None:
    """Tear-down: make sure a host process is gone (errors ignored)."""
    if host is not None:
        with contextlib.suppress(Exception):
            host.close()
