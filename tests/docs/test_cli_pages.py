"""The command-line reference is generated from the parsers, and no page names an option a command
does not accept (nor does the README)."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from _docs import CODE, DOCS, ROOT, load_hook

cli_pages = load_hook("cli_pages")


def _documented_options(markdown: str) -> set[str]:
    """Option strings of the definition-list terms of a generated page (`` `--name NAME` ``)."""
    found: set[str] = set()
    for term in re.findall(r"^`(-[^`]+)`$", markdown, flags=re.M):
        for part in term.split(", "):
            found.add(part.split(" ", 1)[0])
    return found


def test_each_page_lists_exactly_the_options_of_its_parsers() -> None:
    for page in cli_pages.pages()[1:]:
        accepted = set().union(*(command.options for command in page.commands))
        documented = _documented_options(page.markdown)
        assert documented == accepted, (page.path, documented ^ accepted)
        for command in page.commands:
            assert f"`{command.prog}`" in page.markdown or page.title == command.prog


def test_every_subcommand_has_a_section() -> None:
    for page in cli_pages.pages()[1:]:
        progs = [command.prog for command in page.commands]
        assert len(progs) == len(set(progs)), page.path
        for prog in progs[1:]:
            assert f"# `{prog}`" in page.markdown, (page.path, prog)


def _scripts() -> dict[str, str]:
    scripts: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return scripts


def test_every_console_script_is_documented() -> None:
    titles = {page.title for page in cli_pages.pages()}
    for script in _scripts():
        alias = cli_pages.SCRIPT_ALIASES.get(script)
        assert script == "paglets" or (alias is not None and f"paglets {alias.split()[0]}" in titles), (
            f"console script {script} has no page: give its module a build_parser() and add it to "
            "SCRIPT_ALIASES in docs/_hooks/cli_pages.py"
        )


def _option_tree(parser: argparse.ArgumentParser, path: str = "") -> dict[str, set[str]]:
    tree = {path: cli_pages.visible_options(parser)}
    for name, _aliases, _text, child in cli_pages._subparsers(parser):
        tree.update(_option_tree(child, f"{path} {name}".strip()))
    return tree


def test_script_aliases_take_the_same_options_as_their_paglets_command() -> None:
    """What the reference says of every alias: "the same command with the same options"."""
    parsers = _parsers()
    for script, alias in cli_pages.SCRIPT_ALIASES.items():
        module_name = _scripts()[script].split(":")[0]
        module = importlib.import_module(module_name)
        own = module.build_parser()
        chain = list(_chain(alias.split(), parsers))
        assert chain, alias
        assert _option_tree(own) == _option_tree(chain[-1]), script


def test_hidden_options_stay_hidden() -> None:
    host = next(page for page in cli_pages.pages() if page.title == "paglets host")
    for shown in ("--connect-to", "--relay-queue-limit", "--ca-file", "--tls-cert", "--auto-update-from-git"):
        assert shown in host.markdown


# --- options named anywhere in the docs ------------------------------------------------------------------

#: How a command starts where docs show it: ``paglets-host``, ``.venv/bin/paglets sys df``, ``uv run ...``.
COMMAND = re.compile(
    r"(?:^|[\s`(])(?:\S*/)?(?:uv run )?(?P<cmd>paglets(?:-[a-z]+(?:-[a-z]+)*)?)\b"
    r"(?P<args>(?: +[^\s`|;&#)]+)*)"
)


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from paglets.cli.host import build_parser as host_parser
    from paglets.cli.tree import build_parser as tree_parser
    from paglets.demo import build_parser as demo_parser

    tree = tree_parser("paglets")
    return {"host": host_parser(), "tree": tree, "demo": demo_parser()}


def _chain(argv: list[str], parsers: dict[str, argparse.ArgumentParser]) -> Iterator[argparse.ArgumentParser]:
    """The parser of the command ``argv`` names, and the group parsers above it."""
    if argv and argv[0] == "host":
        yield parsers["host"]
        return
    if argv and argv[0] == "demo":
        yield parsers["demo"]
        return
    parser = parsers["tree"]
    for word in argv:
        if word.startswith("-"):
            continue
        children = {
            name: child
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for name, child in action.choices.items()
        }
        if word not in children:
            break
        parser = children[word]
        yield parser


def _sources() -> list[Path]:
    pages = [p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts]
    return sorted(
        [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *pages, *CODE.glob("*.sh"), *CODE.glob("*.service")]
    )


def _code_texts(path: Path) -> Iterator[str]:
    text = path.read_text()
    if path.suffix != ".md":
        yield from text.splitlines()
        return
    for block in re.findall(r"```(?:sh|text|ini)?[^\n]*\n(.*?)```", text, flags=re.S):
        yield from block.splitlines()
    yield from re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))


def _mentions() -> Iterator[tuple[Path, str, list[str]]]:
    for path in _sources():
        for text in _code_texts(path):
            text = text.split(" # ", 1)[0]
            for match in COMMAND.finditer(text):
                try:
                    args = shlex.split(match["args"])
                except ValueError:
                    args = match["args"].split()
                command = match["cmd"]
                if command != "paglets" and command not in cli_pages.SCRIPT_ALIASES:
                    continue  # not a command of this version (a file name, a command of 2.0)
                if command != "paglets":
                    args = [*cli_pages.SCRIPT_ALIASES[command].split(), *args]
                yield path, f"{command}{match['args']}", args


def test_options_named_in_the_docs_exist() -> None:
    """Every ``--option`` shown after a command (in code blocks and code spans of every page, the README,
    CONTRIBUTING, the example scripts and the systemd unit) is one its parser accepts and shows."""
    parsers = _parsers()
    checked = 0
    problems = []
    for path, text, args in _mentions():
        chain = list(_chain(args, parsers))
        if not chain:
            continue
        accepted = set().union(*(cli_pages.visible_options(p) for p in chain)) | {"-h", "--help", "--version"}
        for arg in args:
            if arg.startswith("-") and not re.fullmatch(r"-\d.*", arg):
                option = arg.split("=", 1)[0]
                checked += 1
                if option not in accepted:
                    problems.append(
                        f"{path.relative_to(ROOT)}: {text!r}: {option} is not an option of {chain[-1].prog}"
                    )
    assert not problems, "\n".join(problems)
    assert checked > 50  # the scan finds the commands (guards against a regular expression gone blind)


@pytest.mark.parametrize("path", ["cli/paglets-host/index.html", "cli/paglets-agents/index.html"])
def test_the_built_pages_show_every_option(site: Path, path: str) -> None:
    html = (site / path).read_text()
    page = next(p for p in cli_pages.pages() if p.path == path.replace("/index.html", ".md"))
    for command in page.commands:
        for option in command.options:
            assert f"<code>{option}" in html or f", {option}" in html, (path, option)
