"""Generate the command-line reference from the argparse parsers themselves, so options never drift.

Every command gets a page under ``cli/``: its usage, description, options (with their defaults) and,
for command groups, every subcommand with its own options. The pages are built from the very parsers
the commands run with (``paglets-host``, ``paglets demo`` and every command of the ``paglets`` tree),
never written by hand; options hidden from ``--help`` stay hidden here too.

As an mkdocs hook (``mkdocs.yml``: ``hooks``) it adds the pages to the site (``on_files``) and fills
the nav entry named :data:`NAV_TITLE` with them (``on_config``). ``python docs/_hooks/cli_pages.py DIR``
writes them to ``DIR`` for a look; ``tests/docs/test_cli_pages.py`` checks them against the parsers.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

NAV_TITLE: Final = "Command-line reference"
#: Console scripts that are another name of a ``paglets`` command (the same parser, another prog).
SCRIPT_ALIASES: Final = {
    "paglets-host": "host",
    "paglets-sysinfo": "sys",
    "paglets-mesh-info": "mesh",
    "paglets-artifacts": "artifacts",
    "paglets-demo": "demo",
    "paglets-pi-compute": "examples pi",
    "paglets-file-grabber": "examples file",
    "paglets-perf-test": "examples perf",
    "paglets-mesh-benchmark": "examples mesh-benchmark",
    "paglets-search": "search",
    "paglets-compute-slots": "compute-slots",
    "paglets-compute-groups": "jobs groups",
    "paglets-analysis-jobs": "examples analysis",
}
USAGE_WIDTH: Final = 100


@dataclass
class Command:
    """One parser on a page: ``prog`` as typed, and the options it accepts (hidden ones excluded)."""

    prog: str
    parser: argparse.ArgumentParser
    options: set[str] = field(default_factory=set)


@dataclass
class Page:
    path: str  # under docs/, e.g. "cli/paglets-host.md"
    title: str
    markdown: str
    commands: list[Command] = field(default_factory=list)


@contextmanager
def _columns(width: int) -> Iterator[None]:
    """argparse wraps at $COLUMNS; pin it so the pages do not depend on the terminal that built them."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, list[str], str, argparse.ArgumentParser]]:
    """(name, aliases, help, parser) of each subcommand, in the order they were added."""
    found: list[tuple[str, list[str], str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        by_parser: dict[int, tuple[str, list[str]]] = {}
        for name, child in action.choices.items():
            key = id(child)
            if key in by_parser:
                by_parser[key][1].append(name)
            else:
                by_parser[key] = (name, [])
        for name, child in action.choices.items():
            entry = by_parser.get(id(child))
            if entry is None or entry[0] != name:
                continue
            found.append((name, entry[1], helps.get(name, ""), child))
    return found


def visible_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string ``--help`` shows, except ``-h``/``--help`` (every command has them)."""
    return {
        s
        for action in parser._actions
        if action.option_strings
        and action.help != argparse.SUPPRESS
        and not isinstance(action, argparse._HelpAction)
        for s in action.option_strings
    }


def _md(text: str) -> str:
    """Help text as Markdown: keep it literal (no emphasis from ``*``/``_``, no HTML from ``<``)."""
    text = " ".join(text.split())
    return re.sub(r"([\\`*_<>\[\]])", r"\\\1", text)


def _render_actions(parser: argparse.ArgumentParser) -> str:
    formatter = parser._get_formatter()
    positionals: list[str] = []
    groups: dict[str, list[str]] = {}
    for group in parser._action_groups:
        for action in group._group_actions:
            if action.help == argparse.SUPPRESS or isinstance(
                action, argparse._SubParsersAction | argparse._HelpAction
            ):
                continue
            help_text = _md(formatter._expand_help(action)) if action.help else ""
            if not action.option_strings:
                name = formatter._metavar_formatter(action, action.dest)(1)[0]
                positionals.append(f"`{name}`\n:   {help_text or '(no description)'}\n")
                continue
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
                names = f"{names} {metavar}"
            title = group.title if group.title not in (None, "options", "optional arguments") else ""
            groups.setdefault(title or "", []).append(f"`{names}`\n:   {help_text or '(no description)'}\n")
    out: list[str] = []
    if positionals:
        out.append("**Arguments**\n\n" + "\n".join(positionals))
    for title, items in groups.items():
        out.append(f"**{title.capitalize() if title else 'Options'}**\n\n" + "\n".join(items))
    return "\n".join(out)


def _render(prog: str, parser: argparse.ArgumentParser, level: int, page: Page) -> str:
    parser.prog = prog
    page.commands.append(Command(prog, parser, visible_options(parser)))
    with _columns(USAGE_WIDTH):
        usage = parser.format_usage().removeprefix("usage: ").rstrip()
    # continuation lines are indented past "usage: "; keep them aligned without that prefix
    usage = "\n".join(line.removeprefix(" " * len("usage: ")) for line in usage.splitlines())
    parts = [f"{'#' * level} `{prog}`\n" if level > 1 else ""]
    if parser.description:
        parts.append(_md(parser.description) + "\n")
    parts.append(f"```text\n{usage}\n```\n")
    actions = _render_actions(parser)
    if actions:
        parts.append(actions)
    if parser.epilog:
        parts.append(_md(parser.epilog) + "\n")
    children = _subparsers(parser)
    if children:
        rows = "\n".join(
            f"| [`{name}`](#{_anchor(f'{prog} {name}')}) | {', '.join(aliases)} | {_md(text)} |"
            for name, aliases, text, _ in children
        )
        parts.append(f"**Commands**\n\n| command | also | what it does |\n| --- | --- | --- |\n{rows}\n")
        for name, _aliases, _text, child in children:
            parts.append(_render(f"{prog} {name}", child, level + 1, page))
    return "\n".join(p for p in parts if p)


def _anchor(title: str) -> str:
    """The id the toc extension gives a heading ``\\`title\\```."""
    return re.sub(r"[^\w\- ]", "", title).strip().lower().replace(" ", "-")


def _page(path: str, title: str, intro: str, prog: str, parser: argparse.ArgumentParser) -> Page:
    page = Page(path, title, "")
    body = _render(prog, parser, 1, page)
    page.markdown = (
        f"# `{title}`\n\n"
        "<!-- Generated from the command's argparse parser by docs/_hooks/cli_pages.py: do not edit. -->\n\n"
        + (f"{intro.strip()}\n\n" if intro.strip() else "")
        + body
    )
    return page


def _also(command: str) -> str:
    same = [script for script, name in SCRIPT_ALIASES.items() if name == command]
    below = [(script, name) for script, name in SCRIPT_ALIASES.items() if name.startswith(f"{command} ")]
    text = ""
    if same:
        names = " and ".join(f"`{s}`" for s in same)
        text += f" Also installed as {names}: the same command with the same options."
    if below:
        names = ", ".join(f"`{script}` (`paglets {name}`)" for script, name in below)
        text += " Its subcommands are also installed as commands of their own, with the same options: "
        text += f"{names}."
    return text


def pages() -> list[Page]:
    """Every page of the command-line reference, the index first."""
    from paglets.cli.host import build_parser as host_parser
    from paglets.cli.tree import build_parser as tree_parser
    from paglets.demo import build_parser as demo_parser

    found: list[Page] = []
    found.append(
        _page(
            "cli/paglets-host.md",
            "paglets host",
            _also("host"),
            "paglets host",
            host_parser("paglets host"),
        )
    )
    tree = tree_parser("paglets")
    for name, _aliases, _text, child in _subparsers(tree):
        prog = f"paglets {name}"
        found.append(_page(f"cli/paglets-{name}.md", prog, _also(name), prog, child))
    found.append(
        _page(
            "cli/paglets-demo.md",
            "paglets demo",
            _also("demo") + " `python -m paglets.demo` runs it too.",
            "paglets demo",
            demo_parser("paglets demo"),
        )
    )
    index = Page("cli/index.md", NAV_TITLE, _index(found))
    return [index, *found]


def _index(found: list[Page]) -> str:
    rows = "\n".join(
        f"| [`{p.title}`]({p.path.removeprefix('cli/')}) | {_first_sentence(p.markdown)} |" for p in found
    )
    scripts = "\n".join(
        f"| `{script}` | [`paglets {name}`]({_alias_link(name)}) |" for script, name in SCRIPT_ALIASES.items()
    )
    return (
        f"# {NAV_TITLE}\n\n"
        "<!-- Generated by docs/_hooks/cli_pages.py: do not edit. -->\n\n"
        "One page per command, generated from the parsers the commands run with: what is here is what "
        "`--help` says, with every option and its default. `paglets COMMAND --help` prints the same.\n\n"
        f"| command | what it does |\n| --- | --- |\n{rows}\n\n"
        "Every command also takes `-h`/`--help`.\n\n"
        "`paglets version` prints the version. The commands of paglets 2.0's releases before the command "
        "tree are installed too, as other names of the same commands:\n\n"
        f"| script | same as |\n| --- | --- |\n{scripts}\n\n"
        "Commands that talk to a mesh find a host at `--entry NAME|URL`, else `$PAGLETS_ENTRY`, else "
        "`http://127.0.0.1:8765`, read the API key from `PAGLETS_API_KEY` (or the variable named by "
        "`--api-key-env`), print tables or `--json`, and exit with 0 (success), 1 (nothing found, or an "
        "answer is incomplete) or 2 (usage or connection error).\n"
    )


def _alias_link(name: str) -> str:
    top, _, rest = name.partition(" ")
    page = f"paglets-{top}.md"
    return f"{page}#{_anchor(f'paglets {name}')}" if rest else page


def _first_sentence(markdown: str) -> str:
    for line in markdown.splitlines()[1:]:
        if line and not line.startswith(("<!--", "#", "Also installed", "Its subcommands")):
            sentence = line.split(". ")[0].rstrip(".")
            return sentence[:1].upper() + sentence[1:] + "."
    return ""


# --- mkdocs hooks ------------------------------------------------------------------------------------------


def on_config(config: Any, **kwargs: Any) -> Any:
    """Fill the nav entry :data:`NAV_TITLE` with the generated pages."""
    generated = pages()

    def fill(items: Any) -> bool:
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict):
                for key, value in item.items():
                    if key == NAV_TITLE:
                        index, *rest = generated
                        item[key] = [index.path, *({p.title: p.path} for p in rest)]
                        return True
                    if fill(value):
                        return True
        return False

    if not fill(config["nav"]):
        raise RuntimeError(f"mkdocs.yml: no nav entry {NAV_TITLE!r} to fill with the command pages")
    return config


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    from mkdocs.structure.files import File

    for page in pages():
        files.append(File.generated(config, page.path, content=page.markdown))
    return files


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "cli-pages")
    for page in pages():
        target = out / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page.markdown)
        print(target)
