"""The cache key: a hash of everything that decides which video comes back.

Provider, model, every normalized request field, the reference image's *content* hash
(not its path), and the options for this provider. Stable across processes and
machines: canonical JSON, no `hash()`, no dict order.
"""

from __future__ import annotations

import hashlib
import json

from .contract import VideoRequest
from .images import image_key

__all__ = ["KEY_VERSION", "cache_key"]

#: Bump when the key's recipe changes, so old entries stop matching instead of lying.
KEY_VERSION = 1


def cache_key(request: VideoRequest, *, provider: str, model: str, image_digest: str | None = None) -> str:
    """Return the hex cache key. `image_digest` saves re-reading an image already hashed."""
    image = None
    if request.reference_image is not None:
        image = image_digest or image_key(request.reference_image)
    material = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": model,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "duration": request.duration,
        "fps": request.fps,
        "size": request.size,
        "seed": request.seed,
        "reference_image": image,
        "motion_strength": request.motion_strength,
        "options": request.options_for(provider),
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
