"""metadata.yaml: LXD's documented example parses; broken or hostile ones are BadRequest."""

from __future__ import annotations

import pytest

from schemas.errors import BadRequest
from services.common.imagefiles.metadata import (
    ImageMetadata,
    Template,
    dump_metadata,
    parse_metadata,
)

# The example from LXD's image format documentation.
LXD_EXAMPLE = b"""\
architecture: x86_64
creation_date: 1424284563
properties:
  description: Ubuntu 22.04 LTS Intel 64bit
  os: Ubuntu
  release: jammy 22.04
templates:
  /etc/hosts:
    when:
      - create
      - rename
    template: hosts.tpl
    properties:
      foo: bar
  /etc/hostname:
    when:
      - start
    template: hostname.tpl
  /etc/network/interfaces:
    when:
      - create
    template: interfaces.tpl
    create_only: true
"""


def test_lxd_documented_example() -> None:
    meta = parse_metadata(LXD_EXAMPLE)
    assert meta.architecture == "x86_64" and meta.creation_date == 1424284563
    assert meta.expiry_date is None
    assert meta.properties["release"] == "jammy 22.04"
    assert meta.templates["/etc/hosts"].when == ["create", "rename"]
    assert meta.templates["/etc/hosts"].properties == {"foo": "bar"}
    assert meta.templates["/etc/network/interfaces"].create_only is True
    assert meta.templates["/etc/hostname"].create_only is False


def test_aliases_numbers_and_extra_keys() -> None:
    meta = parse_metadata(
        b"architecture: amd64\ncreation_date: 5\nexpiry_date: 9\n"
        b"properties: {release: 12, os: debian, empty: null}\nvariant: x\n"
    )
    assert meta.canonical_architecture == "x86_64"
    assert meta.properties == {"release": "12", "os": "debian", "empty": ""}
    assert meta.expiry_date == 9


def test_dump_round_trip() -> None:
    meta = parse_metadata(LXD_EXAMPLE)
    again = parse_metadata(dump_metadata(meta))
    assert again == meta
    assert (
        b"properties: {}"
        not in dump_metadata(
            ImageMetadata(
                architecture="x86_64",
                creation_date=1,
                templates={"/etc/hostname": Template(when=["create"], template="hostname.tpl")},
            )
        ).split(b"templates:")[1]
    )


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"creation_date: 1\n", "architecture"),
        (b"architecture: x86_64\n", "creation_date"),
        (b"architecture: pdp11\ncreation_date: 1\n", "unknown architecture"),
        (b"architecture: x86_64\ncreation_date: yesterday\n", "creation_date"),
        (b"architecture: x86_64\ncreation_date: -4\n", "creation_date"),
        (b"- just\n- a list\n", "must be a mapping"),
        (b"architecture: [unclosed\n", "not valid YAML"),
        (b"", "must be a mapping"),
        (
            b"architecture: x86_64\ncreation_date: 1\ntemplates:\n  /etc/x:\n"
            b"    template: ../../../etc/shadow\n",
            "inside templates/",
        ),
        (
            b"architecture: x86_64\ncreation_date: 1\ntemplates:\n  /etc/x:\n"
            b"    template: /etc/shadow\n",
            "inside templates/",
        ),
        (
            b"architecture: x86_64\ncreation_date: 1\ntemplates:\n  etc/x:\n    template: x.tpl\n",
            "absolute path",
        ),
        (
            b"architecture: x86_64\ncreation_date: 1\ntemplates:\n  /etc/x:\n"
            b"    template: x.tpl\n    when: [sometimes]\n",
            "when",
        ),
        (b"architecture: x86_64\ncreation_date: 1\nx: " + b"a" * (1024 * 1024), "larger than"),
    ],
)
def test_invalid_metadata(data: bytes, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        parse_metadata(data)
