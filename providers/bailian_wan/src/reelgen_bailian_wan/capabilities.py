"""What `wan2.6-i2v-flash` can honour, declared once for the core's checks and for the docs.

Every number here comes from the DashScope reference (sections 3, 6 and 8); the
comments say where a value is a choice between conflicting revisions.
"""

from __future__ import annotations

from reelgen.capabilities import Capabilities, OptionSpec, ResolutionTier
from reelgen.pricing import PriceTable, Pricing, Rate

__all__ = ["CAPABILITIES", "MODEL", "PRICING", "PROVIDER", "TIERS"]

#: The provider's name in configuration, options and job ids.
PROVIDER = "bailian_wan"
#: The only model string this provider sends: no aliases, no date suffixes.
MODEL = "wan2.6-i2v-flash"

TIERS: tuple[ResolutionTier, ...] = (
    ResolutionTier(name="720P", pixels=1280 * 720, multiple_of=16),
    ResolutionTier(name="1080P", pixels=1920 * 1080, multiple_of=16),
)

_OPTIONS = {
    "resolution": OptionSpec(
        type="str",
        choices=("720P", "1080P"),
        default=None,
        doc="Output tier. Default: the tier nearest to `size` in pixel count (the API alone would use 1080P).",
    ),
    "audio": OptionSpec(
        type="bool",
        default=True,
        doc="Generate a soundtrack (the API default). false = silent video at the lower silent price.",
    ),
    "audio_url": OptionSpec(
        type="str",
        default=None,
        doc="http(s):// or oss:// URL of a wav/mp3 (3-30 s, <= 15 MB) to drive the soundtrack; "
        "a local file only with upload='oss'.",
    ),
    "prompt_extend": OptionSpec(
        type="bool",
        default=True,
        doc="Let the service rewrite the prompt with an LLM (the API default; slower).",
    ),
    "shot_type": OptionSpec(
        type="str",
        choices=("single", "multi"),
        default="single",
        requires=("prompt_extend=true",),
        doc="single or multi-shot video; only with prompt_extend=true, and it overrides the prompt's shot wording.",
    ),
    "watermark": OptionSpec(type="bool", default=False, doc="Add the 'AI生成' watermark, bottom right."),
    "upload": OptionSpec(
        type="str",
        choices=("inline", "oss"),
        default="inline",
        doc="How a local image (path, file://, bytes) travels: inline as a data URI (every region), or "
        "oss = the SDK's temporary upload (Beijing only, 48 h, not for production).",
    ),
}

#: Per output second, by region, tier and audio (issue 13's published figures, read 2026-12-01).
#: The reference (section 6) gives the mainland figures only, as third-party hints, and says
#: "no official figures were gathered"; the international ones are not in it. Flash is not
#: offered in the other regions, so they have no table (an estimate there is unknown).
PRICING = Pricing(
    tables=(
        PriceTable(
            currency="CNY",
            regions=("cn-beijing",),
            rates=(
                Rate(tier="720P", audio=True, per_second=0.3),
                Rate(tier="720P", audio=False, per_second=0.15),
                Rate(tier="1080P", audio=True, per_second=0.5),
                Rate(tier="1080P", audio=False, per_second=0.25),
            ),
        ),
        PriceTable(
            currency="USD",
            regions=("ap-southeast-1",),
            rates=(
                Rate(tier="720P", audio=True, per_second=0.05),
                Rate(tier="720P", audio=False, per_second=0.025),
                Rate(tier="1080P", audio=True, per_second=0.075),
                Rate(tier="1080P", audio=False, per_second=0.0375),
            ),
        ),
    ),
    as_of="2026-12-01",
    source="https://help.aliyun.com/zh/model-studio/models (mainland), "
    "https://www.alibabacloud.com/help/en/model-studio/models (international)",
    tier_option="resolution",
    audio_option="audio",
    usage_seconds="output_video_duration",
    usage_tier="SR",
    usage_audio="audio",
    note="The reference lists the mainland figures as third-party hints (section 6) and no international ones.",
)

CAPABILITIES = Capabilities(
    model=MODEL,
    duration_range=(2.0, 15.0),
    integer_duration=True,
    native_fps=(30.0,),
    resolution_tiers=TIERS,
    aspect_follows_image=True,
    requires_reference_image=True,
    image_formats=("JPEG", "PNG", "BMP", "WEBP"),
    # "<= 10 MB"; the decimal reading is the stricter of the two.
    image_max_bytes=10_000_000,
    # The later revision of the API reference ([240, 8000]); the 2026-01-18 one said [360, 2000].
    image_side_range=(240, 8000),
    image_alpha=False,
    image_url_schemes=("http", "https", "oss"),
    prompt_max_chars=1500,
    prompt_overflow="truncate",
    negative_prompt=True,
    negative_prompt_max_chars=500,
    seed=True,
    seed_range=(0, 2_147_483_647),
    deterministic=False,
    motion_strength=False,
    cancel="pending",
    resume=True,
    result_url_ttl=86_400.0,
    # Per main account, summed over its keys (reference section 6); the core's governor
    # enforces them across processes (override in [limits.bailian_wan]).
    max_concurrency=5,
    max_submit_rate=5.0,
    max_query_rate=20.0,
    # The API's own defaults for an omitted field (5 s; flash always outputs 30 fps), and
    # 720P landscape (the tier follows `size`; the aspect follows the image anyway).
    default_duration=5.0,
    default_fps=30.0,
    default_size="1280*720",
    billed=True,
    pricing=PRICING,
    options=_OPTIONS,
)
