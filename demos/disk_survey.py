"""Disk survey: a paglet clones itself to every host of the mesh; each clone lists the volumes of its
host and reports them to the parent, which the demo prints as one table.

    python demos/disk_survey.py [--hosts alpha beta gamma] [--timeout 10]
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet
from paglets.core.messages import Message
from paglets.patterns import MeshFanoutMixin, MeshFanoutState

#: File systems that hold no user data.
PSEUDO = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "securityfs",
        "pstore",
        "debugfs",
        "tracefs",
        "configfs",
        "fusectl",
        "mqueue",
        "hugetlbfs",
        "bpf",
        "autofs",
        "binfmt_misc",
        "nsfs",
        "rpc_pipefs",
        "squashfs",
        "overlay",
        "tmpfs",
        "ramfs",
        "efivarfs",
    }
)


@dataclass
class Volume:
    path: str
    total: int
    used: int
    free: int


@dataclass
class SurveyState(MeshFanoutState):
    #: Host name → its volumes (filled in the parent).
    findings: dict[str, list[Volume]] = field(default_factory=dict)
    diagnostics: list[str] = field(default_factory=list)


def volumes() -> list[Volume]:
    """The mounted volumes of this machine (one per device; / when the mount table cannot be read)."""
    paths: list[str] = []
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            seen: set[str] = set()
            for line in mounts:
                device, path, fstype, *_ = line.split()
                if fstype not in PSEUDO and device not in seen and os.path.isdir(path):
                    seen.add(device)
                    paths.append(path.replace("\\040", " "))
    except OSError:
        pass
    found = []
    for path in paths or ["/"]:
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        found.append(Volume(path, usage.total, usage.used, usage.free))
    return found


class DiskSurvey(MeshFanoutMixin, Paglet[SurveyState]):
    State = SurveyState

    def handle_message(self, message: Message) -> Any:
        if message.kind == "survey":
            self.fanout_reset(timeout=float(message.get_arg("timeout", 10.0)))
            for host in self.fanout_select_hosts(list(message.get_arg("hosts", []))):
                self.fanout_prepare_clone(host)
                try:
                    self.fanout_record_child_proxy(host.name, self.clone(host.url))
                except Exception as exc:
                    self.fanout_record_error(host.name, f"cannot clone there: {exc}")
                finally:
                    self.fanout_finish_clone_prepare()
                self.state.diagnostics.append(f"clone sent to {host.name} ({host.url})")
            return True
        if message.kind == "report":  # from a clone
            host = str(message.get_arg("host"))
            self.state.findings[host] = [Volume(**v) for v in message.get_arg("volumes", [])]
            self.state.diagnostics.append(f"{host} reported {len(self.state.findings[host])} volume(s)")
            self.fanout_record_done(host)
            return True
        if message.kind == "status":
            self.fanout_expire_pending("no report before the deadline")
            state = self.state
            return {
                "pending": list(state.pending_hosts),
                "findings": {h: [vars(v) for v in vs] for h, vs in state.findings.items()},
                "errors": dict(state.errors),
                "diagnostics": list(state.diagnostics),
            }
        if message.kind == "cleanup":
            self.fanout_cleanup_children()
            return dict(self.state.cleanup_errors)
        return self.not_handled()

    def run(self) -> None:
        if self.state.role != "child":
            return
        report = Message("report", {"host": self.context.name, "volumes": [vars(v) for v in volumes()]})
        self.send(self.state.parent_agent_id, report, host_url=self.state.parent_host_url)


def main(argv: list[str] | None = None) -> int:
    from demos.support import local_hosts, parser

    options = parser(__doc__)
    options.add_argument("--hosts", nargs="+", default=["alpha", "beta", "gamma"], help="hosts to start")
    options.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reports")
    args = options.parse_args(argv)
    with local_hosts(*args.hosts) as hosts:
        entry = hosts[0]
        parent = entry.create(DiskSurvey)
        print(f"parent paglet {parent.agent_id} started on {entry.name} at {entry.address}")
        print("mesh:")
        for ref in entry.list_hosts():
            status = "online" if ref.online else "offline"
            print(f"- {ref.name} -> {ref.url} ({status}, version {ref.code_version})")
        parent.send(Message("survey", {"timeout": args.timeout}))
        deadline = time.monotonic() + args.timeout + 5
        status = parent.send(Message("status"))
        while status["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)  # the clones report on their own schedule
            status = parent.send(Message("status"))
        parent.send(Message("cleanup"))
        print("diagnostics:")
        for line in status["diagnostics"]:
            print(f"- {line}")
        print("findings:")
        print(f"{'host':<12} {'volume':<42} {'size_gb':>9} {'used_gb':>9} {'free_gb':>9}")
        for host, found in sorted(status["findings"].items()):
            for volume in found:
                gb = [volume[k] / 1e9 for k in ("total", "used", "free")]
                print(f"{host:<12} {volume['path']:<42} {gb[0]:>9.2f} {gb[1]:>9.2f} {gb[2]:>9.2f}")
        print("errors:")
        for host, error in sorted(status["errors"].items()):
            print(f"- {host}: {error}")
        if not status["errors"]:
            print("- none")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demos.support import run

    run("disk_survey")
