"""Syncing a user's launch.toml with the bundled template, in real temporary directories."""

from __future__ import annotations

import io
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from paglets.config import _launch_sync
from paglets.config.startup import (
    MAX_BACKUP_CANDIDATES,
    LaunchConfigSyncResult,
    bundled_launch_config_text,
    console_prompt,
    sync_launch_config,
    sync_launch_config_result,
)
from paglets.core.errors import HostError
from paglets.core.runtime_values import LaunchConfigSyncAction as Action

TEMPLATE = """\
[launch]
demo_config_id = "paglets-default-launch"
demo_config_version = "2"

[[resident_services]]
class = "pkg.services:Info"
"""

OLD = """\
# my edits
[launch]
demo_config_id = "paglets-default-launch"
demo_config_version = "1"
"""

MOMENT = datetime(2024, 1, 2, 3, 4, 5)


def at_moment() -> datetime:
    return MOMENT


def never_asked(question: str) -> bool:
    raise AssertionError(f"unexpected prompt: {question}")


def sync(target: Path, **options: object) -> Action:
    settings: dict[str, object] = {
        "bundled": TEMPLATE,
        "assume_yes": False,
        "interactive": False,
        "prompt": never_asked,
        "now": at_moment,
    }
    settings.update(options)
    return sync_launch_config(target, **settings)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_missing_file_is_copied(tmp_path: Path) -> None:
    target = tmp_path / "home" / ".paglets" / "launch.toml"
    assert sync(target) is Action.COPIED
    assert target.read_text() == TEMPLATE
    assert sync(target) is Action.UNCHANGED
    assert leftovers(target.parent) == []


def test_copy_uses_the_bundled_template_by_default(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    assert sync(target, bundled=None) is Action.COPIED
    assert target.read_text() == bundled_launch_config_text()
    assert sync(target, bundled=None) is Action.UNCHANGED


def test_sync_disabled_by_the_file_is_skipped(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    text = OLD.replace("[launch]\n", "[launch]\nsync_demo_config = false\n")
    target.write_text(text)
    assert sync(target, assume_yes=True) is Action.SKIPPED
    assert sync(target, interactive=True) is Action.SKIPPED
    assert target.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["launch.toml"]


def test_same_id_and_version_is_unchanged(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    text = TEMPLATE + '\n[[startup_agents]]\nclass = "mine:Agent"\n'
    target.write_text(text)
    assert sync(target, assume_yes=True) is Action.UNCHANGED
    assert target.read_text() == text


def test_other_version_without_consent_only_reports(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    target.write_text(OLD)
    assert sync(target) is Action.UPDATE_AVAILABLE
    assert target.read_text() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["launch.toml"]


def test_missing_id_counts_as_another_version(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    target.write_text('[[startup_agents]]\nclass = "mine:Agent"\n')
    assert sync(target) is Action.UPDATE_AVAILABLE


def test_assume_yes_keeps_backups_under_fresh_names(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    target.write_text(OLD)
    assert sync(target, assume_yes=True) is Action.UPDATED
    assert target.read_text() == TEMPLATE
    assert (tmp_path / "launch.toml.old").read_text() == OLD

    second = OLD.replace("# my edits", "# second edits")
    target.write_text(second)
    assert sync(target, assume_yes=True) is Action.UPDATED
    assert (tmp_path / "launch.toml.old").read_text() == OLD
    assert (tmp_path / "launch.toml.old-20240102-030405").read_text() == second

    third = OLD.replace("# my edits", "# third edits")
    target.write_text(third)
    assert sync(target, assume_yes=True) is Action.UPDATED
    assert (tmp_path / "launch.toml.old-20240102-030405-2").read_text() == third
    assert target.read_text() == TEMPLATE
    assert leftovers(tmp_path) == []


def test_backups_are_bounded(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    target.write_text(OLD)
    for backup in _launch_sync.backup_names(target, MOMENT):
        backup.write_text("taken")
    assert len(_launch_sync.backup_names(target, MOMENT)) == MAX_BACKUP_CANDIDATES
    with pytest.raises(HostError) as info:
        sync(target, assume_yes=True)
    assert str(info.value) == f"{target}: no free backup name (tried {MAX_BACKUP_CANDIDATES} names)"
    assert target.read_text() == OLD


def test_interactive_prompt_decides(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    target.write_text(OLD)
    questions: list[str] = []

    def answer(reply: bool) -> object:
        def ask(question: str) -> bool:
            questions.append(question)
            return reply

        return ask

    assert sync(target, interactive=True, prompt=answer(False)) is Action.UPDATE_AVAILABLE
    assert target.read_text() == OLD
    assert sync(target, interactive=True, prompt=answer(True)) is Action.UPDATED
    assert target.read_text() == TEMPLATE
    assert len(questions) == 2
    assert str(target) in questions[0]
    assert "version 1" in questions[0]
    assert "version 2" in questions[0]


def test_update_keeps_the_file_mode(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    target.write_text(OLD)
    target.chmod(0o600)
    assert sync(target, assume_yes=True) is Action.UPDATED
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_backup_is_a_copy_where_hard_links_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "launch.toml"
    target.write_text(OLD)
    assert sync(target, assume_yes=True) is Action.UPDATED
    assert (tmp_path / "launch.toml.old").read_text() == OLD
    assert target.read_text() == TEMPLATE
    assert leftovers(tmp_path) == []


def test_only_the_launch_table_is_checked(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    target.write_text(TEMPLATE + 'lifecycle = "sometimes"\nunknown = 1\n')
    assert sync(target) is Action.UNCHANGED


def test_malformed_files_are_errors_naming_them(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    target.write_text("[launch]\nsync_demo_config = 'no'\n")
    with pytest.raises(HostError) as info:
        sync(target, assume_yes=True)
    assert str(info.value) == f'{target}: launch.sync_demo_config: expected true or false, got "no"'
    target.write_text("[launch\n")
    with pytest.raises(HostError, match=r"invalid TOML"):
        sync(target, assume_yes=True)
    assert target.read_text() == "[launch\n"


def test_bundled_template_must_identify_itself(tmp_path: Path) -> None:
    with pytest.raises(HostError) as info:
        sync(tmp_path / "launch.toml", bundled="[launch]\ndemo_config_id = 'x'\n")
    assert str(info.value) == (
        "default_launch.toml (bundled): launch: must set demo_config_id and demo_config_version"
    )
    assert not (tmp_path / "launch.toml").exists()


def test_unreadable_and_unwritable_targets_are_host_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HostError) as info:
        sync(blocker / "launch.toml")
    assert str(info.value) == f"{blocker / 'launch.toml'}: cannot open launch config: Not a directory"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")  # reads as "no file", but no directory can be made there
    with pytest.raises(HostError, match="cannot write launch config") as info:
        sync(dangling / "launch.toml")
    assert isinstance(info.value.__cause__, OSError)


def test_result_details_and_messages(tmp_path: Path) -> None:
    target = tmp_path / "launch.toml"
    common = {"bundled": TEMPLATE, "now": at_moment, "interactive": False}
    copied = sync_launch_config_result(target, assume_yes=False, **common)  # type: ignore[arg-type]
    assert copied == LaunchConfigSyncResult(
        Action.COPIED, target, bundled_id="paglets-default-launch", bundled_version="2"
    )
    assert copied.describe() == f"copied the bundled launch config (version 2) to {target}"

    target.write_text(OLD)
    available = sync_launch_config_result(target, assume_yes=False, **common)  # type: ignore[arg-type]
    assert available.installed_version == "1"
    assert available.describe().startswith(f"warning: launch config {target} (version 1) differs")

    updated = sync_launch_config_result(target, assume_yes=True, **common)  # type: ignore[arg-type]
    assert updated.action is Action.UPDATED
    assert updated.backup_path == tmp_path / "launch.toml.old"
    assert updated.describe().endswith(f"previous launch config moved to {tmp_path / 'launch.toml.old'}")

    unchanged = sync_launch_config_result(target, assume_yes=True, **common)  # type: ignore[arg-type]
    assert unchanged.describe() == f"launch config {target} is up to date (version 2)"
    target.write_text("[launch]\nsync_demo_config = false\n")
    skipped = sync_launch_config_result(target, assume_yes=True, **common)  # type: ignore[arg-type]
    assert skipped.describe() == f"launch config {target} has sync_demo_config = false; not synced"


@pytest.mark.parametrize(("typed", "expected"), [("y\n", True), ("YES\n", True), ("n\n", False), ("", False)])
def test_console_prompt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], typed: str, expected: bool
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    assert console_prompt("Replace it?") is expected
    assert capsys.readouterr().err == "Replace it? [y/N] "
