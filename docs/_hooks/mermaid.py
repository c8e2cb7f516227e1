"""Bundle Mermaid with the site: fetch one pinned release from the npm registry, never from a CDN.

The site renders its diagrams with ``mermaid.min.js`` served from ``docs/assets/vendor/mermaid/`` (git
ignores it). This module puts it there: ``npm pack mermaid@VERSION`` downloads the package tarball from
the npm registry (with npm's own integrity check), the script is taken out of it, its SHA-256 is
compared with the pinned one, and the file is written with the package's licence next to it. Nothing
is downloaded when the file is already there with the right hash.

Run it by hand (``python docs/_hooks/mermaid.py``); ``mkdocs build``/``mkdocs serve`` run it too, as the
``on_pre_build`` hook of ``mkdocs.yml``, so a fresh checkout builds in one command.

Why not commit the file: it is 3.5 MB of minified JavaScript (1 MB gzipped), changed wholesale by every
upgrade; a pinned version and hash give the same reproducibility for 20 lines.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Final

#: Mermaid 11, the major version the Material theme's diagram integration is written for.
VERSION: Final = "11.17.2"
SHA256: Final = "581ed7d74bd9048d0e3a91363927d72ef22942d7722546b27f7cc29e35390eb8"
#: Where the site serves it from (relative to ``docs/``); ``docs/overrides/main.html`` names the same path.
TARGET: Final = Path("assets/vendor/mermaid/mermaid.min.js")
NPM_TIMEOUT: Final = 300.0

DOCS = Path(__file__).resolve().parents[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure(docs_dir: Path = DOCS) -> Path:
    """Make sure ``docs_dir/TARGET`` holds the pinned Mermaid; fetch it with npm when missing."""
    target = docs_dir / TARGET
    if target.is_file() and _sha256(target) == SHA256:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"the docs need mermaid {VERSION} in {target} and npm is not installed to fetch it; install "
            "Node.js/npm, or put dist/mermaid.min.js of that npm package there by hand"
        )
    with tempfile.TemporaryDirectory(prefix="paglets-mermaid-") as tmp:
        done = subprocess.run(
            [npm, "pack", f"mermaid@{VERSION}", "--silent", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            cwd=tmp,
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm pack mermaid@{VERSION} failed: {done.stderr.strip()}")
        tarball = Path(tmp) / f"mermaid-{VERSION}.tgz"
        with tarfile.open(tarball) as archive:
            script = archive.extractfile("package/dist/mermaid.min.js")
            licence = archive.extractfile("package/LICENSE")
            if script is None or licence is None:
                raise RuntimeError(f"mermaid-{VERSION}.tgz lacks dist/mermaid.min.js or LICENSE")
            data, licence_text = script.read(), licence.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"mermaid {VERSION}: SHA-256 {digest} is not the pinned {SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    (target.parent / "LICENSE").write_bytes(licence_text)
    return target


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """mkdocs hook: the site is never built without its diagram renderer."""
    ensure(Path(config["docs_dir"]))


if __name__ == "__main__":
    print(ensure())
    sys.exit(0)
