"""A worker that clones itself: one copy per host of the mesh, each counting primes in its own slice."""

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CloneEvent
from paglets.core.messages import Message, ReplySet


@dataclass
class PrimeState(PagletState):
    role: str = "boss"  # "boss" (the paglet you created) or "worker" (its clones)
    todo: list[list[int]] = field(default_factory=list)  # the boss's slices not handed out yet
    lo: int = 0  # a worker's slice: [lo, hi)
    hi: int = 0
    boss_id: str = ""
    count: int = 0
    done: bool = False


def count_primes(lo: int, hi: int) -> int:
    return sum(1 for n in range(max(lo, 2), hi) if all(n % d for d in range(2, int(n**0.5) + 1)))


class PrimeCounter(Paglet[PrimeState]):
    State = PrimeState

    # --- the boss --------------------------------------------------------------------------------------

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "count" and self.state.role == "boss":
            return self.count(msg.get_arg("below"))
        if msg.kind == "result" and self.state.role == "worker":
            # wait for this worker's run() (another thread) to finish its slice
            self.wait_state(lambda state: state.done, timeout=30)
            state = self.state
            return {"host": self.context.name, "lo": state.lo, "hi": state.hi, "count": state.count}
        return self.not_handled()

    def count(self, below: int) -> dict[str, Any]:
        hosts = [ref.name for ref in self.context.available_hosts()]  # online hosts, this one included
        step = -(-below // len(hosts))
        self.state.todo = [[lo, min(lo + step, below)] for lo in range(0, below, step)]
        workers = [self.clone(host) for host in hosts]  # on_cloning hands each clone a slice
        replies = ReplySet(worker.send_future(Message("result")) for worker in workers)
        parts = sorted((reply.get_reply(timeout=60) for reply in replies), key=lambda part: part["lo"])
        for worker in workers:
            worker.dispose()  # the work is done: end the clones
        return {"below": below, "primes": sum(part["count"] for part in parts), "parts": parts}

    # --- cloning ---------------------------------------------------------------------------------------

    def on_cloning(self, event: CloneEvent) -> None:
        # Runs on the boss just before its state is copied: what is set here is what the clone gets.
        self.state.lo, self.state.hi = self.state.todo.pop(0)
        self.state.role = "worker"

    def on_cloned(self, event: CloneEvent) -> None:
        # Runs on the boss once the clone exists on event.target_host_name: back to being the boss.
        self.state.role, self.state.lo, self.state.hi = "boss", 0, 0

    def on_clone(self, event: CloneEvent) -> None:
        # Runs in the clone, on the target host, with a new agent id (event.clone_agent_id).
        self.state.boss_id = event.source_agent_id

    # --- the workers ------------------------------------------------------------------------------------

    def run(self) -> None:
        if self.state.role != "worker":
            return
        count = count_primes(self.state.lo, self.state.hi)  # the work, outside the lock
        with self.locked():
            self.state.count, self.state.done = count, True
        self.notify_all_state_changed()  # wake the "result" handler waiting in wait_state
