"""A title card for text-only requests: a seeded gradient with the prompt on it."""

from __future__ import annotations

import random
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["title_card"]


def title_card(prompt: str, width: int, height: int, seed: int) -> Image.Image:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    top = tuple(rng.randrange(20, 120) for _ in range(3))
    bottom = tuple(rng.randrange(120, 240) for _ in range(3))
    card = Image.linear_gradient("L").resize((width * 2, height * 2))
    image = Image.composite(Image.new("RGB", card.size, bottom), Image.new("RGB", card.size, top), card)
    draw = ImageDraw.Draw(image)
    lines = textwrap.wrap(prompt, width=max(10, width // 12))[:6]
    y = image.height // 2 - 12 * len(lines)
    for line in lines:
        draw.text((image.width // 10, y), line, fill=(255, 255, 255))
        y += 24
    return image
