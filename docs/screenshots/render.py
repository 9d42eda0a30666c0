"""Renders a TUI frame (`tracer replay --frame COLSxROWS`, JSON) to a PNG with Pillow and
DejaVu Sans Mono (Debian: python3-pil, fonts-dejavu-core)."""
import json
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
COLORS = {
    "Reset": None, "Black": (0, 0, 0), "Red": (205, 49, 49), "Green": (13, 188, 121),
    "Yellow": (229, 192, 16), "Blue": (36, 114, 200), "Magenta": (214, 112, 214),
    "Cyan": (17, 168, 205), "Gray": (204, 204, 204), "DarkGray": (118, 118, 118),
    "White": (229, 229, 229),
}
FG, BG = (220, 220, 220), (24, 24, 28)

frame = json.load(open(sys.argv[1]))
size = 14
font, bold = ImageFont.truetype(FONT, size), ImageFont.truetype(BOLD, size)
cw, ch = int(font.getlength("M")), size + 4
image = Image.new("RGB", (cw * frame["width"], ch * frame["height"]), BG)
draw = ImageDraw.Draw(image)
for y, runs in enumerate(frame["rows"]):
    x = 0
    for run in runs:
        fg = COLORS.get(run["fg"]) or FG
        bg = COLORS.get(run["bg"]) or BG
        if run["reversed"]:
            fg, bg = bg, fg
        for char in run["text"]:
            left, top = x * cw, y * ch
            draw.rectangle([left, top, left + cw, top + ch], fill=bg)
            draw.text((left, top + 2), char, font=bold if run["bold"] else font, fill=fg)
            if run["crossed_out"]:
                draw.line([left, top + ch // 2, left + cw, top + ch // 2], fill=fg)
            if run["underlined"]:
                draw.line([left, top + ch - 2, left + cw, top + ch - 2], fill=fg)
            x += 1
image.save(sys.argv[2])
