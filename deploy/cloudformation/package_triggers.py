"""Zip the Lambda triggers: `python deploy/cloudformation/package_triggers.py OUT.zip`.

The zip holds the package `identity_triggers/` (from `triggers/`) at its root,
so the template's handlers `identity_triggers.pre_sign_up.handler` and
`identity_triggers.post_confirmation.handler` import as they do locally. Only
`.py` files go in, with fixed timestamps and modes: the same sources always
give the same bytes, so an unchanged build uploads an unchanged artifact.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "triggers"
PACKAGE = "identity_triggers"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build(out: Path, source: Path = SOURCE) -> list[str]:
    """Write the zip to `out`; return the archive names in it."""
    files = sorted((source / PACKAGE).rglob("*.py"))
    if not files:
        raise FileNotFoundError(f"no trigger sources under {source / PACKAGE}")
    names = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            name = path.relative_to(source).as_posix()
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            names.append(name)
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: package_triggers.py OUT.zip", file=sys.stderr)
        return 2
    for name in build(Path(argv[0])):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
