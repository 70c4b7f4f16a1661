"""``warren``: the entry point of Warren's command line."""

from __future__ import annotations

import argparse
import json
import sys

from gateway.cli.client import ApiError, Client, socket_path
from gateway.cli.history import names_table, report

#: Accepted spellings of each kind, to the kind the API names.
KINDS = {
    "profile": "profile",
    "profiles": "profile",
    "project": "project",
    "projects": "project",
    "instance": "instance",
    "instances": "instance",
    "container": "instance",
    "network": "network",
    "networks": "network",
    "storage-pool": "storage-pool",
    "storage-pools": "storage-pool",
    "pool": "storage-pool",
    "image": "image",
    "images": "image",
    "image-alias": "image-alias",
    "image-aliases": "image-alias",
    "alias": "image-alias",
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="warren", description="Warren's own commands.")
    top.add_argument("--socket", help="API socket (default: $WARREN_SOCKET, $WARREN_DIR, ...)")
    commands = top.add_subparsers(dest="command", required=True)
    history = commands.add_parser(
        "history",
        help="who did what to an object, and the object as it was",
        description="Show every event of an object from the log (who, when, what changed) "
        "and its state now or as of --at. Without a name: every name objects of the kind "
        "carried in the project, and the objects that carried each.",
    )
    history.add_argument("kind", choices=sorted(KINDS), help="kind of object")
    history.add_argument(
        "name", nargs="?", help="current or former name of the object (an image: fingerprint)"
    )
    history.add_argument(
        "--project", help="project (current or former name) of the object (default: default)"
    )
    history.add_argument(
        "--id", dest="object_id", help="which of the objects that carried the name (its id)"
    )
    history.add_argument(
        "--at", help="stream sequence number or RFC 3339 time (e.g. 2026-01-02T03:04:05Z)"
    )
    history.add_argument("--json", action="store_true", help="print the API answer as JSON")
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status is 0 on success, 1 on an API error."""
    args = parser().parse_args(argv)
    client = Client(socket_path(args.socket))
    if args.command == "history":
        kind = KINDS[args.kind]
        try:
            if args.name is None:
                listing = client.history_names(kind, project=args.project)
                print(json.dumps(listing, indent=2) if args.json else names_table(listing))
                return 0
            history = client.history(
                kind, args.name, project=args.project, at=args.at, object_id=args.object_id
            )
        except ApiError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(history, indent=2))
        else:
            print(report(history, kind, args.name, args.at))
    return 0


if __name__ == "__main__":
    sys.exit(main())
