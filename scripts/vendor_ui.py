"""Fetch the console's third-party libraries from the npm registry (``make vendor-ui``).

Each package is pinned by version and by the registry's ``dist.integrity``
(SHA-512 of the tarball); a tarball whose hash differs is refused.  Only the
files listed are copied (with the package's LICENSE) into
src/ironlog/service/console/static/vendor/<package>/, and each copied file is
pinned by its SHA-256 too: the copies are committed, so building and testing
need no network, and tests/test_console.py checks the committed files against
these pins.

    python scripts/vendor_ui.py          # fetch, check, copy
    python scripts/vendor_ui.py --check  # only check the committed copies (offline)

To update a library: change its version and integrity (``npm view uplot@X
dist.integrity``), empty its file hashes, run this script, and pin the
SHA-256 values it prints.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
VENDOR = Path(__file__).resolve().parent.parent / "src/ironlog/service/console/static/vendor"


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity of the tarball
    files: dict[str, str]  # path in the tarball (under package/) -> SHA-256 of the file
    licence: str

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name}-{self.version}.tgz"


PINS = [
    Pin(
        name="uplot",
        version="1.6.32",
        integrity="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        files={
            "dist/uPlot.esm.js": "5dd9b3281aa64b461b42d9945f6adb2649d346502b12281a9ae0d46599a80eba",
            "dist/uPlot.min.css": (
                "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
            ),
            "LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
        },
        licence="MIT",
    ),
]


def target(pin: Pin, path: str) -> Path:
    return VENDOR / pin.name / Path(path).name


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(pin: Pin) -> None:
    with urllib.request.urlopen(pin.tarball, timeout=60) as r:
        data = r.read()
    got = integrity_of(data)
    if got != pin.integrity:
        raise SystemExit(f"{pin.name} {pin.version}: tarball integrity {got} != pinned")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for path, want in pin.files.items():
            member = tar.extractfile("package/" + path)
            if member is None:
                raise SystemExit(f"{pin.name}: {path} is not a file in the tarball")
            body = member.read()
            digest = hashlib.sha256(body).hexdigest()
            if want and digest != want:
                raise SystemExit(f"{pin.name}: {path} has SHA-256 {digest}, pinned {want}")
            out = target(pin, path)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(body)
            print(f"{pin.name}@{pin.version} {path} -> {out.relative_to(VENDOR)} sha256 {digest}")


def check() -> list[str]:
    """What is wrong with the committed copies (empty: they match the pins)."""
    problems = []
    expected = {target(p, f) for p in PINS for f in p.files}
    for pin in PINS:
        for path, want in pin.files.items():
            out = target(pin, path)
            if not out.is_file():
                problems.append(f"{out.relative_to(VENDOR)} is missing")
            elif hashlib.sha256(out.read_bytes()).hexdigest() != want:
                problems.append(f"{out.relative_to(VENDOR)} does not match its pinned SHA-256")
    for f in VENDOR.rglob("*"):
        if f.is_file() and f not in expected:
            problems.append(f"{f.relative_to(VENDOR)} is not pinned")
    return problems


def main(argv: list[str]) -> int:
    if "--check" not in argv:
        for pin in PINS:
            fetch(pin)
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
