"""``python -m services.image.build {busybox,debian} --output DIR``: build an LXD image tarball.

Prints the result as one JSON object (path, fingerprint, size, seconds); errors go to stderr
with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.image.build",
        description="Build a standard LXD unified image tarball (lxc image import accepts it).",
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    busybox = kinds.add_parser("busybox", help="a busybox image from busybox-static (instant)")
    busybox.add_argument("--output", required=True, type=Path, help="directory for the tarball")
    busybox.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    debian = kinds.add_parser("debian", help="a Debian image made with debootstrap (a minute)")
    debian.add_argument("--output", required=True, type=Path, help="directory for the tarball")
    debian.add_argument("--mirror", help="Debian mirror URL (default: the one apt uses here)")
    debian.add_argument("--suite", default="bookworm", help="Debian suite (default: bookworm)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the builder the arguments name; 0 on success."""
    args = _parser().parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    try:
        if args.kind == "busybox":
            from services.image.builders.busybox import build_busybox

            result = build_busybox(args.output, busybox=args.busybox)
        else:
            from services.image.builders.debian import build_debian

            result = build_debian(args.output, mirror=args.mirror, suite=args.suite)
    except (RuntimeError, OSError) as e:
        print(f"build {args.kind}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result.model_dump()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
