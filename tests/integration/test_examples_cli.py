"""The example commands end to end: three ``paglets-host`` processes on loopback, each command run as a
subprocess, its printed results checked (pi digits, file checksums, complete matrices and tables).

The three hosts are shared by the module; a test that needs a host to go away starts a fourth one
and kills it. The hosts' working directory is a temporary directory, which the search tests fill.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_hosts import Mesh, start_mesh, stop_mesh
from conftest import wait_until

from paglets.examples.compute.chudnovsky import PI_KNOWN

HOSTS = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    home = tmp_path_factory.mktemp("home")
    cwd = tmp_path_factory.mktemp("work")
    started = start_mesh(home, cwd, HOSTS)
    try:
        yield started
    finally:
        stop_mesh(started)


def machin(decimals: int) -> str:
    """Decimals of pi by Machin's formula (independent of the code under test)."""
    unity = 10 ** (decimals + 10)

    def arctan_inverse(x: int) -> int:
        total = term = unity // x
        n, sign = 1, -1
        while term:
            term //= x * x
            n += 2
            total += sign * (term // n)
            sign = -sign
        return total

    value = 4 * (4 * arctan_inverse(5) - arctan_inverse(239)) // 10**10
    return str(value)[1 : decimals + 1]


# --- pi -------------------------------------------------------------------------------------------------


def test_pi_digits_are_printed_verified_and_written(mesh: Mesh, tmp_path: Path) -> None:
    done = mesh.cli("paglets-pi-compute", "--digits", "16")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3.1415926535897932\n"
    assert "16 digits verified against the known value" in done.stderr
    output = tmp_path / "pi.txt"
    many = mesh.cli(
        "paglets", "examples", "pi", "--digits", "1500", "--output", str(output), "--batch-size", "4"
    )
    assert many.returncode == 0, many.stderr
    expected = "3." + machin(1500)
    assert many.stdout == expected + "\n"
    assert output.read_text() == expected + "\n"
    assert "verified against Ramanujan's series" in many.stderr
    assert machin(1000) == PI_KNOWN
    data = json.loads(mesh.cli("paglets-pi-compute", "--start", "990", "--digits", "20", "--json").stdout)
    assert data["pi"] == machin(1010)[990:]
    assert data["verified"] is True
    assert data["status"] == "done"
    assert set(data["host_batches"]) <= set(HOSTS)
    assert sum(data["host_batches"].values()) == data["batches"]


def test_pi_bad_input_is_one_line(mesh: Mesh) -> None:
    cases = (
        (("--digits", "0"), "--digits must be 1 or more, got 0"),
        (("--digits", "-5"), "--digits must be 1 or more, got -5"),
        (("--start", "-1"), "--start must be 0 or more, got -1"),
        (("--digits", "300000"), "--start + --digits must be at most 200000"),
        (("--host", "nowhere"), "unknown host 'nowhere' (known: alpha, beta, gamma)"),
    )
    results = mesh.many(*(("paglets-pi-compute", *argv) for argv, _text in cases))
    for (argv, text), done in zip(cases, results, strict=True):
        assert done.returncode == 2, (argv, done.stderr)
        assert done.stderr.startswith("paglets-pi-compute: "), done.stderr
        assert text in done.stderr
        assert len(done.stderr.splitlines()) == 1
        assert done.stdout == ""


# --- file grabber ---------------------------------------------------------------------------------------


def test_file_grabber_push_pull_dry_and_overwrite(mesh: Mesh, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    (mesh.cwd / "data.bin").write_bytes(data)
    target = tmp_path / "out" / "data.bin"
    dry = mesh.cli(
        "paglets-file-grabber", "push", "./data.bin", "--remote", "beta", "--dest", str(target), "--dry"
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == (
        f"DRY_RUN: alpha:{mesh.cwd / 'data.bin'} (195.3 KB) -> beta:{target}\nwould save with mode=copy\n"
    )
    assert not target.exists()
    push = mesh.cli("paglets-file-grabber", "push", "data.bin", "--remote", "beta", "--dest", str(target))
    assert push.returncode == 0, push.stdout + push.stderr
    digest = hashlib.sha256(data).hexdigest()
    assert (
        push.stdout.splitlines()[0] == f"COMPLETED: alpha:{mesh.cwd / 'data.bin'} (195.3 KB) -> beta:{target}"
    )
    assert f"sha256 {digest} verified" in push.stdout
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    again = mesh.cli(
        "paglets", "examples", "file", "push", "data.bin", "--remote", "beta", "--dest", str(target)
    )
    assert again.returncode == 1
    assert (
        again.stdout
        == f"FAILED: on beta: destination already exists: {target} (pass --overwrite to replace it)\n"
    )
    target.write_bytes(b"old")
    forced = mesh.cli(
        "paglets-file-grabber", "push", "data.bin", "--remote", "beta", "--dest", str(target), "--overwrite"
    )
    assert forced.returncode == 0, forced.stdout
    assert "replaced the existing file" in forced.stdout
    assert target.read_bytes() == data
    back = tmp_path / "back.bin"
    pull = mesh.cli(
        "paglets-file-grabber",
        "pull",
        str(target),
        "--remote",
        "gamma",
        "--dest",
        str(back),
        "--mode",
        "move",
    )
    assert pull.returncode == 0, pull.stdout
    assert pull.stdout.startswith(
        f"COMPLETED: gamma:{target} (195.3 KB) -> alpha:{back}\nsaved with mode=move"
    )
    assert back.read_bytes() == data
    assert not target.exists()
    assert not [a for h in HOSTS for a in mesh.agents(h) if "FileGrabber" in a.get("class_name", "")]


def test_file_grabber_bad_input(mesh: Mesh, tmp_path: Path) -> None:
    missing = mesh.cli("paglets-file-grabber", "push", "nope.bin", "--remote", "beta")
    assert missing.returncode == 1
    assert missing.stdout == f"FAILED: source file not found: {mesh.cwd / 'nope.bin'}\n"
    unknown = mesh.cli("paglets-file-grabber", "push", "data.bin", "--remote", "nowhere")
    assert unknown.returncode == 2
    assert unknown.stderr == "paglets-file-grabber: unknown host 'nowhere' (known: alpha, beta, gamma)\n"
    folder = mesh.cli("paglets-file-grabber", "push", str(tmp_path), "--remote", "beta")
    assert folder.returncode == 1
    assert folder.stdout == f"FAILED: source is a directory, not a file: {tmp_path}\n"


# --- perf test ------------------------------------------------------------------------------------------


def _rows(output: str, host: str) -> list[list[str]]:
    return [c for line in output.splitlines() if (c := re.split(r"\s{2,}", line.strip()))[0] == host]


def test_perf_test_measures_every_host(mesh: Mesh) -> None:
    done = mesh.cli("paglets-perf-test", "--duration", "0.02", "--disk-size", "1M", "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    for host in HOSTS:
        (cpu,) = [r for r in _rows(done.stdout, host) if "op/s" in " ".join(r)]
        assert len(cpu) == 8, cpu
        assert all(re.search(r"\d", cell) for cell in cpu[1:]), cpu
        (disk,) = [r for r in _rows(done.stdout, host) if "/tmp" in " ".join(r) or "1.0 MB" in r]
        assert disk[2] == "1.0 MB"
        assert f"perf: {host} measured in" in done.stderr
    assert "3 of 3 hosts measured" in done.stdout
    data = json.loads(
        mesh.cli(
            "paglets", "examples", "perf", "--duration", "0.01", "--no-disk", "--host", "beta", "--json"
        ).stdout
    )
    assert data["status"] == "done"
    assert list(data["results"]) == ["beta"]
    result = data["results"]["beta"]
    assert {k["name"] for k in result["single_core"]} == {"integer", "float", "sha256"}
    assert all(k["operations"] > 0 for k in result["single_core"] + result["multi_core"])
    assert result["disks"] == []
    bad = mesh.cli("paglets-perf-test", "--duration", "0")
    assert bad.returncode == 2
    assert bad.stderr == "paglets-perf-test: --duration must be between 0.01 and 60 seconds, got 0\n"


# --- mesh benchmark -------------------------------------------------------------------------------------


def _matrix(output: str) -> dict[str, dict[str, str]]:
    """The directional matrix of a report: ``{source: {target: cell}}``."""
    table = output.split("average travel time")[0]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip().strip("|").split("|")][1:]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells[1:], strict=True))
    return rows


def test_mesh_benchmark_prints_a_complete_matrix(mesh: Mesh) -> None:
    done = mesh.cli("paglets-mesh-benchmark", "--payload-size", "64K", "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    # columns as wide as their widest cell: a slow move (over 999.9 of the unit) widens its column
    assert re.match(r"unit: (us|ms|s)\n\n\| from \\ to \| +alpha \| +beta \| +gamma \|\n", done.stdout), (
        done.stdout
    )
    matrix = _matrix(done.stdout)
    assert list(matrix) == list(HOSTS)
    cells = [cell for row in matrix.values() for cell in row.values()]
    assert len(cells) == 9
    assert all(re.fullmatch(r"\d+\.\d", cell) for cell in cells), matrix
    assert "measured movements: 9" in done.stdout
    assert "average payload transfer speed to other hosts: alpha (" in done.stdout
    assert re.search(r"overall benchmark time: [\d.]+ (ms|s)\n$", done.stdout)
    clocks = done.stdout.split("clock offsets vs entry:")[1].split("message passing")[0]
    assert all(f"| {host}" in clocks for host in HOSTS)
    no_self = mesh.cli("paglets", "examples", "mesh-benchmark", "--exclude-self", "--repeats", "2", "--json")
    assert no_self.returncode == 0, no_self.stderr
    data = json.loads(no_self.stdout)
    summary = data["summary"]
    assert summary["movement_count"] == 12
    assert summary["missing_pairs"] == []
    measured = [(a, b) for a, row in summary["matrix_seconds"].items() for b in row]
    assert sorted(measured) == sorted((a, b) for a in HOSTS for b in HOSTS if a != b)  # n(n-1) cells
    assert all(n == 2 for row in summary["matrix_samples"].values() for n in row.values())


def test_mesh_benchmark_bad_input(mesh: Mesh) -> None:
    big = mesh.cli("paglets-mesh-benchmark", "--payload-size", "2G")
    assert big.returncode == 2
    assert big.stderr.startswith(
        "paglets-mesh-benchmark: --payload-size 2147483648 bytes is above the limit of 1024 MiB"
    )
    odd = mesh.cli("paglets-mesh-benchmark", "--payload-size", "lots")
    assert odd.returncode == 2
    assert "not a size: 'lots'" in odd.stderr
    alone = mesh.cli("paglets-mesh-benchmark", "--host", "beta", "--exclude-self")
    assert alone.returncode == 1
    assert "nothing to measure" in alone.stderr


# --- search ---------------------------------------------------------------------------------------------


def test_search_grep_and_find(mesh: Mesh) -> None:
    tree = mesh.cwd / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "build").mkdir()
    (tree / ".hidden").mkdir()
    (tree / "src" / "app.py").write_text("import os\n\ndef Greet(name):\n    return 'hello ' + name\n")
    (tree / "notes.txt").write_text("hello world\nnothing\nHELLO again\n")
    (tree / "build" / "out.txt").write_text("hello from a build\n")
    (tree / ".hidden" / "h.txt").write_text("hello hidden\n")
    (tree / ".gitignore").write_text("build/\n")
    (done, every, context, counted, found, dirs, lines, none, bad, kind, missing, types) = mesh.many(
        ("paglets", "search", "grep", "-i", "hello", "tree", "--host", "beta", "-g", "!*.py"),
        ("paglets-search", "grep", "hello", "tree", "--hidden", "--no-ignore", "-l"),
        ("paglets", "search", "grep", "Greet", "tree", "-t", "py", "-A", "1", "--host", "gamma"),
        ("paglets", "search", "grep", "-c", "-S", "hello", "tree", "--host", "alpha"),
        ("paglets", "search", "find", r"\.txt$", "tree", "--host", "alpha"),
        ("paglets", "search", "find", "--kind", "dir", "-H", "--no-ignore", "", "tree", "--host", "alpha"),
        ("paglets", "search", "grep", "world", "tree", "--jsonl", "--host", "beta"),
        ("paglets", "search", "grep", "zzz-not-there", "tree"),
        ("paglets", "search", "grep", "foo(", "tree"),
        ("paglets", "search", "grep", "x", "-t", "cobol"),
        ("paglets", "search", "grep", "x", "no/such/dir", "--host", "alpha"),
        ("paglets", "search", "--type-list"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "beta:tree/notes.txt:1:1:hello world\nbeta:tree/notes.txt:3:1:HELLO again\n"
    assert every.returncode == 0, every.stderr
    assert sorted(every.stdout.splitlines()) == sorted(
        f"{h}:tree/{p}" for h in HOSTS for p in ("notes.txt", "src/app.py", "build/out.txt", ".hidden/h.txt")
    )
    assert "12 results from 3 of 3 hosts" in every.stderr
    assert context.stdout == (
        "gamma:tree/src/app.py:3:5:def Greet(name):\ngamma-tree/src/app.py-4-    return 'hello ' + name\n"
    )
    assert sorted(counted.stdout.splitlines()) == ["alpha:tree/notes.txt:2", "alpha:tree/src/app.py:1"]
    assert found.stdout == "alpha:tree/notes.txt\n"
    assert sorted(dirs.stdout.splitlines()) == ["alpha:tree/.hidden/", "alpha:tree/build/", "alpha:tree/src/"]
    assert [json.loads(line)["path"] for line in lines.stdout.splitlines()] == ["tree/notes.txt"]
    assert none.returncode == 1
    assert none.stdout == ""
    assert bad.returncode == 2
    assert bad.stderr.startswith("paglets search grep: bad pattern 'foo(':")
    assert kind.returncode == 2
    assert kind.stderr == "paglets search grep: unknown file type 'cobol' (see --type-list)\n"
    assert "alpha: error: no/such/dir: No such file or directory" in missing.stderr
    assert "py: *.py, *.pyi" in types.stdout.splitlines()


# --- hosts going away -----------------------------------------------------------------------------------


def test_a_host_that_goes_away_is_reported_missing(mesh: Mesh) -> None:
    delta = mesh.start("delta")
    try:
        mesh.wait_joined()
        began = time.monotonic()
        perf = mesh.popen(
            "paglets-perf-test",
            "--duration",
            "0.1",
            "--no-disk",
            "--no-memory",
            "--workers",
            "1",
            "--timeout",
            "60",
        )
        wait_until(lambda: any("Performance" in a.get("class_name", "") for a in mesh.agents("delta")), 30)
        delta.stop(signal.SIGKILL)
        out, err = perf.communicate(timeout=60)
        assert perf.returncode == 1, out + err
        assert time.monotonic() - began < 40
        assert re.search(
            r"- delta: (the host went offline|the host does not answer|its paglet there)", out
        ), out
        assert "3 of 4 hosts measured" in out
        for host in HOSTS:
            assert f"perf: {host} measured in" in err
    finally:
        delta.stop(signal.SIGKILL)
        mesh.hosts.pop("delta")
    mesh.wait_joined()
    echo = mesh.start("delta")
    try:
        mesh.wait_joined()
        bench = mesh.popen("paglets-mesh-benchmark", "--clock-probes", "20", "--timeout", "60")
        wait_until(
            lambda: any("Traveller" in a.get("class_name", "") for a in mesh.agents("delta")), 30, 0.002
        )
        echo.stop(signal.SIGKILL)
        out, err = bench.communicate(timeout=60)
        assert bench.returncode == 1, out + err
        matrix = _matrix(out)
        assert set(matrix) == {*HOSTS, "delta"}
        assert "- delta: " in out.split("\nerrors:\n")[1], out
        # a new traveller measured every pair of the hosts that stayed
        assert all(re.fullmatch(r"\d+\.\d", matrix[a][b]) for a in HOSTS for b in HOSTS), out
    finally:
        echo.stop(signal.SIGKILL)
        mesh.hosts.pop("delta")
