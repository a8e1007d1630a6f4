"""Draw the batch example's three reference images (the repository ships no binaries).

Run: `.venv/bin/python examples/batch/make_images.py` (writes examples/batch/images/*.jpg).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

FOLDER = Path(__file__).with_name("images")
#: name -> (sky top, sky bottom, sea) colours.
SCENES = {
    "dawn": ((250, 170, 120), (120, 90, 160), (40, 60, 110)),
    "noon": ((120, 180, 250), (200, 230, 255), (30, 90, 150)),
    "dusk": ((60, 30, 90), (240, 120, 60), (20, 40, 80)),
}


def draw(top: tuple[int, int, int], bottom: tuple[int, int, int], sea: tuple[int, int, int]) -> Image.Image:
    width, height = 640, 360
    image = Image.new("RGB", (width, height))
    pen = ImageDraw.Draw(image)
    horizon = int(height * 0.62)
    for y in range(horizon):
        t = y / horizon
        pen.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    pen.rectangle([0, horizon, width, height], fill=sea)
    for x in range(0, width, 20):
        pen.arc([x, horizon + (x * 7) % 30, x + 32, horizon + 10 + (x * 7) % 30], 180, 360, fill=(230, 230, 240))
    centre = int(width * 0.7)
    pen.polygon(
        [(centre - 16, horizon), (centre + 16, horizon), (centre + 9, horizon - 140), (centre - 9, horizon - 140)],
        fill=(235, 235, 225),
    )
    pen.rectangle([centre - 12, horizon - 160, centre + 12, horizon - 140], fill=(255, 230, 120))
    return image


def main() -> None:
    FOLDER.mkdir(exist_ok=True)
    for name, colours in SCENES.items():
        draw(*colours).save(FOLDER / f"{name}.jpg", quality=85)
        print(FOLDER / f"{name}.jpg")


if __name__ == "__main__":
    main()
