"""What the preview provider honours: almost everything, exactly, for free."""

from __future__ import annotations

from reelgen import Capabilities, OptionSpec

__all__ = ["CAPABILITIES", "MODEL"]

MODEL = "preview-panzoom-1"

CAPABILITIES = Capabilities(
    model=MODEL,
    duration_range=(0.5, 60.0),
    fps_range=(1.0, 120.0),
    side_range=(16, 4096),
    # Bounded by render memory (< 300 MB peak, docs/benchmarks.md): x264 alone takes ~220 MB
    # for a 4096*4096 frame; 3840*2160 (4K UHD) measures 263 MB.
    max_frame_pixels=3840 * 2160,
    size_multiple_of=2,  # H.264 with 4:2:0 chroma needs even sides
    requires_reference_image=False,
    image_formats=("JPEG", "PNG", "WEBP", "BMP", "GIF"),
    image_max_bytes=50 * 1024 * 1024,
    image_side_range=(16, 16384),
    # The renderer decodes the picture whole, and a large picture and a large frame add up:
    # 4096*4096 (16.8 MP) into a 3840*2160 frame stays under 300 MB; 20 MP measures 272 MB,
    # 32 MP 409 MB (docs/benchmarks.md, render memory).
    image_max_pixels=4096 * 4096,
    image_alpha=True,
    image_url_schemes=(),  # offline: it reads local images only
    prompt_max_chars=None,
    negative_prompt=False,
    seed=True,
    deterministic=True,
    motion_strength=True,
    cancel="any",
    resume=True,
    result_url_ttl=None,
    billed=False,
    options={
        "audio": OptionSpec(type="bool", default=False, doc="Add a quiet seeded tone as an AAC audio track."),
        "render_delay": OptionSpec(
            type="float",
            default=0.0,
            minimum=0.0,
            maximum=600.0,
            doc="Seconds to wait before rendering, to rehearse a slow provider (queue, progress, cancel).",
        ),
    },
)
