"""Names map to paths injectively: two paglets never share a work directory (``a:b`` and ``a_b`` used to
map to the same ``work/a_b``, and disposing one deleted the other's files), two registered files never
share a path, two classes never share a storage directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _paglets import Counter, FileCarrier

from paglets.core.messages import Message
from paglets.runtime.host import Host

SIMILAR_IDS = ["a:b", "a_b", "a.b", "a-b"]


def test_similar_ids_get_their_own_work_directories(host: Host) -> None:
    dirs = {}
    for agent_id in SIMILAR_IDS:
        host.create(Counter, agent_id=agent_id)
        work = host.work_dir_for(agent_id)
        (work / "mine.txt").write_text(agent_id)
        dirs[agent_id] = work
    assert len(set(dirs.values())) == len(SIMILAR_IDS)
    assert all(work.parent == host.persistence_dir / "work" for work in dirs.values())
    host.dispose("a:b")
    assert not dirs["a:b"].exists()
    for agent_id in SIMILAR_IDS[1:]:
        assert (dirs[agent_id] / "mine.txt").read_text() == agent_id  # untouched by the dispose


def test_usual_ids_keep_their_own_names(host: Host) -> None:
    proxy = host.create(Counter)
    assert host.work_dir_for(proxy.agent_id) == host.persistence_dir / "work" / proxy.agent_id


def test_registered_files_with_similar_names_arrive_apart(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    proxy = alpha.create(FileCarrier, agent_id="carrier")
    for index, name in enumerate(["data", "x:y", "x_y", ".x_y"]):  # on_arrival reads "data"
        source = tmp_path / f"input{index}.bin"
        source.write_bytes(name.encode() * 100)
        proxy.send(Message("register", {"name": name}, arg=str(source)))
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    paths = set()
    for name in ["x:y", "x_y", ".x_y"]:
        assert moved.send(Message("read", {"name": name})) == name.encode() * 100
        where = Path(moved.send(Message("where", {"name": name})))
        assert where.parent == beta.work_dir_for("carrier")
        assert not where.name.startswith(".")
        paths.add(where)
    assert len(paths) == 3
