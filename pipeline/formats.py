"""Every image format PixelFlow reads or writes, described once: what sniffing, validation, the
JSON Schema, the cost estimate, `format: auto`, the CLI and the docs know about it.

Pure data (no libvips): the DSL half reads it. How each output format is written is the one
other place a format lives: ``pipeline/encoders.py``'s table, one function per format. A new
output format is an entry here, an encoder there, and their tests.

Order matters: it is the order of the DSL's ``format`` literal (the fuzzer draws from it) and of
the lists in validation messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FORMATS", "EffortRange", "Format", "auto_formats", "markdown_table", "output_formats", "words"]


@dataclass(frozen=True, slots=True)
class EffortRange:
    """The encoder's own effort range and PixelFlow's default in it."""

    lo: int
    hi: int
    default: int


@dataclass(frozen=True, slots=True)
class Format:
    name: str  # as the DSL and job results spell it
    title: str  # as people write it
    mime: str
    extensions: tuple[str, ...]  # file-name suffixes read as this format; outputs are written with the first
    decoder: str
    # What `format: auto` writes for a source of this format, and what it writes when the variant
    # has `max_bytes`, which needs a format whose quality trades size (``lossy``).
    auto: str
    auto_lossy: str
    # Sniffing: a regular expression the first bytes match (re.S), or the ISO BMFF brands
    # (``ftyp``) that name the format (pipeline/sniff.py reads the container).
    magic: bytes | None = None
    brands: frozenset[bytes] = frozenset()
    # Output only; ``encoder`` None: PixelFlow does not write this format.
    encoder: str | None = None
    quality: int | None = None  # the default quality; None: `quality` does not apply
    lossy: bool = False  # quality trades size for fidelity: `max_bytes` searches it, results report it
    quality_as: str | None = None  # with `quality`, pixels are compressed as this format (and cost as it)
    effort: EffortRange | None = None  # None: `effort` does not apply
    lossless: bool = False  # the `lossless` option applies
    progressive: bool = False  # the `progressive` option applies (interlaced)
    metadata: bool = True  # PixelFlow's encoder writes metadata, so `keep` applies
    alpha: bool = False
    animation: bool = False  # an animated source stays animated (pipeline/animation.py)
    # Encoding cost (pipeline/cost.py): CPU ms per output megapixel, indexed by effort from
    # ``effort.lo`` (one rate without effort); lossless has its own rates, or costs ``lossless_factor``
    # times these.
    ms_per_mp: tuple[float, ...] = ()
    lossless_ms_per_mp: tuple[float, ...] | None = None
    lossless_factor: float = 1.0
    notes: str = field(default="", compare=False)  # for the docs table

    @property
    def extension(self) -> str:
        """The suffix outputs are written with: stored object keys, `pixelflow run` files."""
        return self.extensions[0]


_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")
# The costs are measured (pipeline/cost.py says how); the effort defaults weigh them: AVIF effort
# above ~4 costs seconds per megapixel for little gain; webp 4 is libwebp's default; JPEG XL 5 is
# ~20 % smaller than 4 for 5x its CPU, about twice WebP's (libjxl's own 7 costs 2x more and was no
# smaller on photos). `auto` with `max_bytes` writes WebP for sources whose own format has no
# quality to lower: it keeps their alpha and animation.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "jpeg", "JPEG", "image/jpeg", (".jpg", ".jpeg"), "libvips", "jpeg", "jpeg", magic=rb"\xff\xd8\xff",
            encoder="Pillow (libjpeg-turbo), else libvips", quality=80, lossy=True, progressive=True,
            ms_per_mp=(11.5,), notes="alpha is flattened onto white",
        ),
        Format(
            "png", "PNG", "image/png", (".png",), "libvips", "png", "webp", magic=rb"\x89PNG\r\n\x1a\n",
            encoder="libvips", effort=EffortRange(0, 9, 6), progressive=True, alpha=True,
            ms_per_mp=(2.3, 20.5, 32, 35, 42, 47, 38, 38, 39, 67), notes="`effort` is zlib's compression level",
        ),
        Format(
            "webp", "WebP", "image/webp", (".webp",), "libvips", "webp", "webp", magic=rb"RIFF....WEBP",
            encoder="Pillow (libwebp), else libvips", quality=80, lossy=True, effort=EffortRange(0, 6, 4),
            lossless=True, alpha=True, animation=True,
            ms_per_mp=(30, 41, 52, 104, 117, 134, 364), lossless_ms_per_mp=(51, 324, 403, 602, 786, 1300, 1190),
        ),
        Format(
            "avif", "AVIF", "image/avif", (".avif",), "libvips", "avif", "avif", brands=frozenset({b"avif", b"avis"}),
            encoder="libvips (libheif)", quality=50, lossy=True, effort=EffortRange(0, 9, 2), lossless=True,
            alpha=True, ms_per_mp=(54, 88, 245, 595, 2549, 2836, 9471, 17552, 22525, 39460), lossless_factor=2.5,
        ),
        Format(
            "gif", "GIF", "image/gif", (".gif",), "libvips", "gif", "webp", magic=rb"GIF8[79]a",
            encoder="libvips (cgif)", effort=EffortRange(1, 10, 7), progressive=True, metadata=False, alpha=True,
            animation=True, ms_per_mp=(367, 505, 371, 654, 1342, 2659, 3267, 4119, 4998, 5549),
            notes="256 colours, 1-bit alpha",
        ),
        Format(
            "tiff", "TIFF", "image/tiff", (".tif", ".tiff"), "libvips", "tiff", "webp", magic=rb"II\*\x00|MM\x00\*",
            encoder="libvips", quality=85, quality_as="jpeg", alpha=True, ms_per_mp=(42,),
            notes="deflate; JPEG-compressed (alpha flattened) with `quality`",
        ),
        Format(
            "jxl", "JPEG XL", "image/jxl", (".jxl",), "imagecodecs (libjxl)", "jxl", "jxl",
            magic=rb"\xff\x0a|\x00\x00\x00\x0cJXL \r\n\x87\n", encoder="imagecodecs (libjxl)", quality=80,
            lossy=True, effort=EffortRange(1, 9, 5), lossless=True, metadata=False, alpha=True,
            ms_per_mp=(49, 38, 44, 36, 204, 368, 381, 1771, 2284),
            lossless_ms_per_mp=(5, 68, 133, 323, 444, 541, 820, 3473, 5837),
        ),
        Format(
            "svg", "SVG", "image/svg+xml", (".svg",), "libvips (librsvg)", "png", "webp", alpha=True,
            magic=rb"(?i)(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE[^>]*>\s*)?<svg[\s>]",
            notes="rendered at the size asked for",
        ),
        Format(
            "heic", "HEIC", "image/heic", (".heic", ".heif"), "pi-heif (libheif)", "jpeg", "jpeg",
            brands=frozenset(_HEIF_BRANDS), alpha=True,
            notes="no HEVC encoder here, and HEVC's patent pool",
        ),
    )
}  # fmt: skip


def output_formats() -> tuple[str, ...]:
    """The formats PixelFlow writes, in the registry's order."""
    return tuple(name for name, f in FORMATS.items() if f.encoder is not None)


def auto_formats(*, lossy: bool = False) -> frozenset[str]:
    """Every format `auto` may write (``lossy``: for a variant with `max_bytes`)."""
    return frozenset(f.auto_lossy if lossy else f.auto for f in FORMATS.values())


def words(names: list[str] | tuple[str, ...]) -> str:
    """``a, b and c``, as validation messages list formats."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def markdown_table() -> str:
    """The registry as a Markdown table, for the job-spec reference."""
    yes = {True: "yes", False: "no"}
    rows = [
        "| Format | Extension | MIME type | Alpha | Animation | Options | Defaults | Written by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in FORMATS.values():
        options = [o for o, on in (("quality", f.quality is not None), ("effort", f.effort is not None),
                                   ("lossless", f.lossless), ("progressive", f.progressive),
                                   ("max_bytes", f.lossy), ("keep", f.metadata and f.encoder is not None)) if on]  # fmt: skip
        defaults = [f"quality {f.quality}"] if f.quality is not None and f.quality_as is None else []
        if f.effort is not None:
            defaults.append(f"effort {f.effort.default} ({f.effort.lo}-{f.effort.hi})")
        written = f.encoder if f.encoder is not None else f"read only (`auto`: {f.auto})"
        if f.notes:
            written += f"; {f.notes}"
        rows.append(
            f"| `{f.name}` ({f.title}) | {', '.join(f.extensions)} | {f.mime} | {yes[f.alpha]} | {yes[f.animation]} "
            f"| {', '.join(options) or '-'} | {', '.join(defaults) or '-'} | {written} |"
        )
    return "\n".join(rows) + "\n"
