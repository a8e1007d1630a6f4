"""Draw the demo's reference image (a lighthouse at dusk) so the repository ships no binaries."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

TARGET = Path(__file__).with_name("lighthouse.jpg")


def draw(width: int = 1280, height: int = 720) -> Image.Image:
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=(int(40 + 200 * t), int(30 + 90 * t), int(90 + 40 * (1 - t))))
    sea = int(height * 0.62)
    for y in range(sea, height):
        t = (y - sea) / (height - sea)
        draw.line([(0, y), (width, y)], fill=(int(20 + 30 * t), int(50 + 40 * t), int(90 + 60 * t)))
    for x in range(0, width, 24):
        draw.arc([x, sea + (x * 7) % 40, x + 40, sea + 12 + (x * 7) % 40], 180, 360, fill=(230, 230, 240))
    cx = int(width * 0.68)
    draw.polygon([(cx - 30, sea), (cx + 30, sea), (cx + 16, sea - 260), (cx - 16, sea - 260)], fill=(235, 235, 225))
    for band in range(3):
        top = sea - 60 - band * 70
        draw.rectangle([cx - 26 + band * 4, top - 25, cx + 26 - band * 4, top], fill=(200, 40, 40))
    draw.rectangle([cx - 22, sea - 300, cx + 22, sea - 260], fill=(255, 230, 120))
    draw.polygon([(cx, sea - 280), (cx - 400, sea - 330), (cx - 400, sea - 230)], fill=(255, 240, 170))
    draw.ellipse(
        [int(width * 0.15), int(height * 0.15), int(width * 0.15) + 70, int(height * 0.15) + 70], fill=(255, 250, 230)
    )
    return image


if __name__ == "__main__":
    if not TARGET.exists():
        draw().save(TARGET, quality=90)
    print(TARGET)
