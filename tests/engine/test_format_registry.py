"""Every format has one home (pipeline/formats.py) and one encoder (pipeline/encoders.py), and
nothing else needs to know of it: a format added to those two alone is validated, published in
the schema, priced, sniffed and encoded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import get_args

from pipeline.dsl.types import Effort, OutputFormat
from pipeline.encoders import ENCODERS
from pipeline.formats import FORMATS, markdown_table, output_formats
from pipeline.sniff import SourceFormat, sniff

ROOT = Path(__file__).resolve().parents[2]


def test_every_format_of_the_dsl_has_one_entry_and_one_encoder() -> None:
    written = set(get_args(OutputFormat)) - {"auto"}
    assert written == set(output_formats()) == set(ENCODERS)
    assert len(output_formats()) == len(ENCODERS)
    assert set(get_args(SourceFormat)) == set(FORMATS), "every format in the registry is read"
    assert all(name == f.name for name, f in FORMATS.items())


def test_the_entries_agree_with_themselves() -> None:
    for f in FORMATS.values():
        assert FORMATS[f.auto].encoder is not None and FORMATS[f.auto_lossy].lossy, f.name
        assert f.extension.startswith(".") and f.mime.startswith("image/")
        assert f.magic is not None or f.brands, f"{f.name}: sniffing cannot tell it"
        if f.encoder is None:
            continue
        assert not f.lossy or f.quality is not None, f"{f.name}: `max_bytes` searches a quality"
        if f.effort is not None:
            assert f.effort.lo <= f.effort.default <= f.effort.hi
        if f.quality_as is not None:
            assert FORMATS[f.quality_as].effort is None
    # the published effort description keeps its order (schemas/ is committed); it names every range
    description = Effort.__metadata__[0].description
    for f in FORMATS.values():
        if f.effort is not None:
            assert f"{f.name} {f.effort.lo}-{f.effort.hi}" in description


def test_sniffing_names_every_format_it_reads() -> None:
    from pipeline.errors import UnsupportedFormat

    try:
        sniff(b"nothing")
    except UnsupportedFormat as exc:
        assert all(f.title in exc.public for f in FORMATS.values())


def test_the_markdown_table_has_a_row_per_format() -> None:
    table = markdown_table().splitlines()
    assert table[0].startswith("| Format | Extension | MIME type | Alpha | Animation | Options | Defaults |")
    assert len(table) == 2 + len(FORMATS)
    jpeg = next(row for row in table if row.startswith("| `jpeg`"))
    assert ".jpg, .jpeg" in jpeg and "image/jpeg" in jpeg and "quality 80" in jpeg and "max_bytes" in jpeg


# Run in a fresh interpreter: the dummy format is registered before anything reads the registry,
# as a format added to pipeline/formats.py would be.
_NEW_FORMAT = """
import dataclasses, json

from pipeline import formats

formats.FORMATS["dmy"] = dataclasses.replace(
    formats.FORMATS["png"], name="dmy", title="Dummy", mime="image/x-dummy", extensions=(".dmy",),
    magic=rb"DMY!", auto="dmy", auto_lossy="webp", encoder="a PNG behind a tag", notes="",
)

from pipeline import encoders

encoders.ENCODERS["dmy"] = lambda e: encoders.Written(
    b"DMY!" + e.image.write_to_buffer(".png", keep=e.keep, compression=e.effort("dmy")), None
)

from devstack.imagegen import encode, photo
from pipeline.compile import compile_plan
from pipeline.dsl import decode_job_spec
from pipeline.dsl.schema import job_spec_schema
from pipeline.dsl.variant import output_format
from pipeline.engine import process
from pipeline.errors import SpecError
from pipeline.sniff import sniff

spec = decode_job_spec({"version": 1, "pipeline": [
    {"id": "a", "action": "resize", "width": 30, "format": "dmy", "effort": 3, "progressive": True},
]})
try:
    decode_job_spec({"version": 1, "pipeline": [{"id": "b", "format": "dmy", "quality": 50}]})
    refused = None
except SpecError as exc:
    refused = exc.errors[0].message
out = process(encode(photo(60, 40, seed=1), ".png"), spec).variants[0]
print(json.dumps({
    "schema": "dmy" in job_spec_schema()["$defs"]["Variant"]["properties"]["format"]["enum"],
    "refused": refused,
    "cost": compile_plan(spec, 60, 40, source_format="png").nodes[0].encode_cost,
    "sniffed": sniff(b"DMY!" + b"\\0" * 12),
    "auto": output_format(decode_job_spec({"version": 1, "pipeline": [{"id": "c"}]}).pipeline[0], "dmy"),
    "written": [out.format, out.content_type, out.data[:4].decode(), out.width],
}))
"""


def test_a_new_format_needs_only_its_entry_and_its_encoder() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_NEW_FORMAT)],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["schema"] is True
    assert result["refused"].endswith("does not apply to dmy; it is lossless")
    assert result["cost"] > 0
    assert result["sniffed"] == "dmy" and result["auto"] == "dmy"
    assert result["written"] == ["dmy", "image/x-dummy", "DMY!", 30]
