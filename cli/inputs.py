"""Which files a command takes from its inputs, and the folder under ``-o`` each one's outputs
go to: one rule for ``pixelflow run`` (local) and ``pixelflow submit`` (remote)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pipeline.formats import FORMATS

__all__ = ["expand", "outputs_or_refuse"]

# What a directory contributes: files named like images (a file given by name is always taken;
# its bytes decide what it is either way).
_IMAGE_SUFFIXES = frozenset(suffix for f in FORMATS.values() for suffix in f.extensions)


def _url_folder(url: str) -> Path:
    """``https://example.com/photos/beach.jpg`` -> ``beach``; a URL without a file name -> its host."""
    parts = urlsplit(url)
    return Path(PurePosixPath(parts.path).stem or parts.hostname or "source")


def expand(inputs: list[Path], urls: Sequence[str] = ()) -> tuple[list[tuple[Path | str, Path]], list[str]]:
    """(source, output folder relative to -o) for every input, and the collisions: two sources
    whose outputs would land in one folder. A file named directly writes to ``<stem>/``; a
    file found in a directory keeps its path below that directory (``a/b.jpg`` -> ``a/b/``); a
    URL (``submit --url``) writes to its file name's stem."""
    pairs: list[tuple[Path | str, Path]] = [(url, _url_folder(url)) for url in urls]
    for item in inputs:
        if item.is_dir():
            for found in sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES):
                if not any(part.startswith(".") for part in found.relative_to(item).parts):
                    pairs.append((found, found.relative_to(item).with_suffix("")))
        else:
            pairs.append((item, Path(item.stem)))
    owners: dict[Path, Path | str] = {}
    collisions = []
    for source, folder in pairs:
        if folder in owners:
            collisions.append(f"{owners[folder]} and {source} would both write {folder}/")
        owners.setdefault(folder, source)
    return pairs, collisions


def outputs_or_refuse(inputs: list[Path], urls: Sequence[str] = ()) -> list[tuple[Path | str, Path]] | None:
    """``expand``'s pairs, or ``None`` once it has said why there is nothing to do: outputs that
    would overwrite each other (refused before any work, so nothing is half written), or no images."""
    pairs, collisions = expand(inputs, urls)
    if collisions:
        print("pixelflow: outputs would overwrite each other; rename or run separately:", file=sys.stderr)
        for line in collisions:
            print(f"  {line}", file=sys.stderr)
        return None
    if not pairs:
        print("pixelflow: no images found in the inputs", file=sys.stderr)
        return None
    return pairs
