"""Differential compatibility check: the same scenarios against paglets 2.0.0 and against ours.

Runs ``scenario.py`` (2.0 authoring API only) once with the reference interpreter and once with ours,
each inside a fresh network namespace with only loopback up, and compares the observations key by key:
return types of the public API (embedded and inside paglets), hook and context-event order, info/health
field names and types, error classes and HTTP statuses for common mistakes, and the signatures of the
public classes. Prints one line per observation that is not an exact match, then a summary.

    .venv/bin/python bench/compat/diff.py                 # differences only
    .venv/bin/python bench/compat/diff.py --all           # every observation
    .venv/bin/python bench/compat/diff.py --reference /path/to/2.0/venv/bin/python --json out.json

Verdicts:
    match        identical observation
    compatible   a signature of ours accepts every call 2.0 accepts (extra parameters have defaults)
    extra        an observation only ours makes (a name 2.0 lacks, a field 2.0 lacks)
    deliberate   a known, documented difference (``docs/compat.md``; the reason is printed)
    DIFF         anything else: an incompatibility to fix or to document

Run on demand (it is not part of the test suite); the reference is installed by ``bench/_reference.py``
into ``bench/.ref/venv`` on first use unless ``--reference`` names an interpreter.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _reference import can_isolate_network, ensure_reference, run_scenario  # noqa: E402

SCENARIO = HERE / "scenario.py"

#: Known differences, kept on purpose: key pattern (fnmatch) -> reason. ``docs/compat.md`` explains each.
DELIBERATE: dict[str, str] = {
    # security and safety choices
    "api:HostClient.post_pickle": "no pickle anywhere: movement uses the binary envelope",
    "http:GET unknown route": "unknown routes answer 404 RouteNotFoundError (2.0: 400 HostError)",
    "http:POST /agents malformed JSON": "malformed JSON is the caller's fault: 400, not 500",
    "http:POST /agents/{id}/messages without message": "a missing field is a 400 naming it, not a 500",
    "error:create(duplicate agent_id)": "an id in use is refused (2.0 replaces and kills the running paglet)",
    "error:create(state of another class)": "the state must be an instance of the paglet's State class",
    "host:dispose(crashed)": "a crashed paglet can be disposed (2.0: PagletCrashedError)",
    "host:send() to crashed": "crashed paglets stay listed and answer PagletCrashedError (contract §10.5)",
    "host:create(run raises)": "run() runs in its own thread (contract): create returns, the paglet crashes",
    "host:proxy.info() run raised": "run() runs in its own thread (contract): the paglet crashes later",
    "value:paglet-crashed event for run()": "run() runs in its own thread (contract): the crash is an event",
    "host:proxy.send(raise_value)": "handler exceptions that are not paglets errors arrive as HostError",
    "host:get_state(inactive)": "get_state also reads inactive paglets (2.0: active only)",
    "inside:context.host.list_agents()": "the paglet-side host offers list_agents (2.0: AttributeError)",
    "inside:self.multicast()": "multicast works inside a paglet (2.0: AttributeError)",
    "inside:self.persistent_storage()": "private class name of the storage facade",
    "value:beta records after failed arrival": "a failed arrival leaves no service record (2.0 leaks it)",
    "error:create_remote(unknown class over HTTP)": "HostClient keeps the error class (2.0: RemoteHostError)",
    # internals of 2.0
    "api:Host.relay_*": "relay mode (connect-to hosts) is not offered yet",
    "api:Host.__init__": "options are validated by one HostConfig (same names and defaults)",
    "api:Host.broadcast_git_update": "git auto-update is not offered",
    "api:Host.handle_git_update_request": "git auto-update is not offered",
    "api:Host.request_peer_git_update": "git auto-update is not offered",
    "api:Host.relay_diagnostics": "relay mode is not offered yet",
    "api:ServiceLease.__init__": "2.0's dataclass exposes its private _released field",
    "api:ServiceContract.route": "the default sentinel object differs (same meaning)",
    "api:FutureReply.__init__": "FutureReply() without a future is allowed",
}

_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _default(value: Any) -> Any:
    return _ADDRESS.sub("", value) if isinstance(value, str) else value


def signature_verdict(ours: Any, ref: Any) -> str | None:
    """``compatible`` when ours accepts every call the reference accepts, else a reason (or None)."""
    if not (isinstance(ours, list) and isinstance(ref, list)):
        return None
    ours_by_name = {p[0]: p for p in ours}
    ours_var_kw = any(p[1] == "VAR_KEYWORD" for p in ours)
    ours_var_pos = any(p[1] == "VAR_POSITIONAL" for p in ours)
    positional = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
    ours_positional = [p for p in ours if p[1] in positional]
    problems: list[str] = []
    index = 0
    for name, kind, default in ref:
        if kind in positional:
            if index < len(ours_positional):
                mine = ours_positional[index]
                if kind == "POSITIONAL_OR_KEYWORD" and mine[0] != name and name not in ("self", "cls"):
                    problems.append(f"parameter {name!r} is called {mine[0]!r}")
                if default is not None and mine[2] is None:
                    problems.append(f"{name!r} has no default")
            elif not ours_var_pos:
                problems.append(f"no positional parameter for {name!r}")
            index += 1
        elif kind == "KEYWORD_ONLY":
            mine = ours_by_name.get(name)
            if mine is None:
                if not ours_var_kw:
                    problems.append(f"no keyword {name!r}")
            elif mine[1] not in ("KEYWORD_ONLY", "POSITIONAL_OR_KEYWORD"):
                problems.append(f"{name!r} cannot be passed by keyword")
            elif default is not None and mine[2] is None:
                problems.append(f"{name!r} has no default")
            elif default is not None and _default(mine[2]) != _default(default):
                problems.append(f"default of {name!r}: {mine[2]} (2.0: {default})")
    ref_names = {p[0] for p in ref}
    ref_positional = sum(1 for p in ref if p[1] in positional)
    for position, (name, kind, default) in enumerate(ours):
        if name in ref_names or default is not None or kind.startswith("VAR_"):
            continue
        if kind in positional and position < ref_positional:
            continue  # a renamed positional parameter, reported above
        problems.append(f"extra required parameter {name!r}")
    return "compatible" if not problems else "; ".join(problems)


def extra_keys_only(ours: Any, ref: Any) -> bool:
    """Whether ``ours`` is ``ref`` with more information: added dict keys, or a dict field that 2.0 always
    leaves ``None`` filled in (every key and shape of ``ref`` otherwise kept)."""
    if isinstance(ours, dict) and isinstance(ref, dict):
        return all(k in ours and (v == "None" or extra_keys_only(ours[k], v)) for k, v in ref.items())
    if isinstance(ours, list) and isinstance(ref, list):
        return len(ours) == len(ref) and all(extra_keys_only(a, b) for a, b in zip(ours, ref, strict=True))
    return bool(ours == ref)


def verdict(key: str, ours: Any, ref: Any, ours_has: bool, ref_has: bool) -> tuple[str, str]:
    for pattern, reason in DELIBERATE.items():
        if fnmatch.fnmatchcase(key, pattern) and ours != ref:
            return "deliberate", reason
    if ours == ref:
        return "match", ""
    if not ref_has:
        return "extra", "only ours"
    if not ours_has:
        return "DIFF", "missing in ours"
    if key.startswith("api:"):
        if ours == "missing":
            return "DIFF", "missing in ours"
        outcome = signature_verdict(ours, ref)
        if outcome == "compatible":
            return "compatible", ""
        if outcome is not None:
            return "DIFF", outcome
    if extra_keys_only(ours, ref):
        return "extra", "ours adds fields"
    if key.startswith("kinds:") and isinstance(ours, list) and isinstance(ref, list) and ours != ref:
        missing = sorted(set(ref) - set(ours))
        if not missing:
            return "extra", f"ours also emits {sorted(set(ours) - set(ref))}"
        return "DIFF", f"never emitted by ours: {missing}"
    return "DIFF", ""


def _api_class(key: str) -> str:
    """The class an ``api:<Class>.<member>`` key belongs to ("" for other keys)."""
    if not key.startswith("api:") or key.endswith("()"):
        return ""
    return key[4:].partition(".")[0]


def short(value: Any, width: int) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", default=None, help="python of a venv with paglets 2.0.0")
    parser.add_argument("--ours", default=sys.executable, help="python of a venv with our paglets")
    parser.add_argument("--all", action="store_true", help="print every observation, not only differences")
    parser.add_argument("--width", type=int, default=70, help="characters shown per value")
    parser.add_argument("--json", type=Path, default=None, help="also write both observation sets here")
    args = parser.parse_args()

    if not can_isolate_network():
        print("cannot create a network namespace (unshare -n): 2.0 would probe the LAN; not running")
        return 2
    reference = args.reference or str(ensure_reference())
    ours = run_scenario(SCENARIO, python=args.ours, timeout=900)
    ref = run_scenario(SCENARIO, python=reference, timeout=900)
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "reference": ref}, indent=2, sort_keys=True))

    counts: dict[str, int] = {}
    rows: list[tuple[str, str, str, str, str]] = []
    ours_classes = {_api_class(key) for key in ours if key.startswith("api:")}
    absent: dict[str, int] = {}
    for key in sorted(set(ours) | set(ref)):
        owner = _api_class(key)
        if key not in ours and owner and owner not in ours_classes:
            absent[owner] = absent.get(owner, 0) + 1  # a whole class ours lacks: one row below
            continue
        outcome, reason = verdict(key, ours.get(key), ref.get(key), key in ours, key in ref)
        counts[outcome] = counts.get(outcome, 0) + 1
        if args.all or outcome not in ("match", "compatible", "extra"):
            rows.append(
                (outcome, key, short(ours.get(key), args.width), short(ref.get(key), args.width), reason)
            )
    for owner, members in absent.items():
        key = f"api:{owner}"
        outcome, reason = verdict(key, "missing", "class", True, True)
        if outcome == "DIFF":
            reason = f"the whole class is missing in ours ({members} members in 2.0)"
        counts[outcome] = counts.get(outcome, 0) + 1
        rows.append((outcome, key, "missing", "class", reason))
    order = {"DIFF": 0, "deliberate": 1, "extra": 2, "compatible": 3, "match": 4}
    rows.sort(key=lambda row: (order[row[0]], row[1]))
    for outcome, key, mine, theirs, reason in rows:
        print(f"{outcome:10} {key}")
        print(f"{'':10}   ours: {mine}")
        print(f"{'':10}   2.0:  {theirs}")
        if reason:
            print(f"{'':10}   note: {reason}")
    print()
    print("  ".join(f"{name}: {counts.get(name, 0)}" for name in order))
    return 1 if counts.get("DIFF") else 0


if __name__ == "__main__":
    raise SystemExit(main())
