"""A contact sheet of a shard set: one row per group, the anchor then its views, labelled.

Layout (pixels): a label column of LABEL_WIDTH on the left, then the K views as square thumbnails,
MARGIN apart and around the edge; so a sheet of n groups is
(LABEL_WIDTH + K * (thumb + MARGIN) + MARGIN) wide and (MARGIN + n * (thumb + MARGIN)) high.
Steered groups (made with --view-method steer or gaussian+steer) carry each view's walk amounts in
their ``.json`` (``alphas``: one {direction: amount} per view); under each positive's thumbnail the
sheet prints them, one line per direction (``zoom +0.42``), so every row is taller by
LINE_HEIGHT times the most directions a shown group has.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from common.files import write_bytes_atomic
from shards.limits import IMAGE_PIXELS
from shards.reader import ShardSet, decode_group_view, open_set
from shards.schema import Group, ShardSetError

LABEL_WIDTH = 150
MARGIN = 4
FONT_SIZE = 12
LINE_HEIGHT = FONT_SIZE + 4
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


def make_contact_sheet(location: str | Path, out: str | Path, *, groups: int = 8, start: int = 0,
                       thumb_size: int = 96, allow_pipe: bool = False) -> Path:
    """Draw groups start..start+groups-1 of a set and save the sheet as a PNG at ``out``."""
    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        raise ShardSetError(f"Cannot write the sheet to {out}: give a file name in an existing folder.")
    sheet = contact_sheet(open_set(str(location), allow_pipe), groups=groups, start=start, thumb_size=thumb_size)
    encoded = io.BytesIO()
    sheet.save(encoded, format="PNG")
    write_bytes_atomic(out, encoded.getvalue())  # a full disk leaves no half sheet behind
    return out


def contact_sheet(shard_set: ShardSet, *, groups: int, start: int, thumb_size: int) -> Image.Image:
    if groups < 1 or thumb_size < 1:
        raise ShardSetError("The number of groups and the thumbnail size must be positive.")
    if not 0 <= start < shard_set.groups:
        raise ShardSetError(f"The set has anchors 0..{shard_set.groups - 1}; there is no group {start}.")
    count = min(groups, shard_set.groups - start)
    cell = thumb_size + MARGIN
    check_sheet_size(LABEL_WIDTH + shard_set.views * cell + MARGIN, MARGIN + count * cell)  # before reading
    shown = read_groups(shard_set, start, count)
    captions = [view_captions(group) for group in shown]
    caption_height = LINE_HEIGHT * max((len(lines) for rows in captions for lines in rows), default=0)
    row_height = cell + caption_height
    size = (LABEL_WIDTH + shard_set.views * cell + MARGIN, MARGIN + len(shown) * row_height)
    check_sheet_size(*size)  # the walk amounts under the views add lines
    sheet = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=FONT_SIZE)
    for row, group in enumerate(shown):
        top = MARGIN + row * row_height
        for line, text in enumerate(row_label(shard_set, group)[:max(1, thumb_size // LINE_HEIGHT)]):
            draw.text((MARGIN, top + line * LINE_HEIGHT), fit_text(draw, text, font), fill=TEXT, font=font)
        for view in range(len(group.views)):
            left = LABEL_WIDTH + view * cell
            sheet.paste(thumbnail(group, view, thumb_size), (left, top))
            for line, text in enumerate(captions[row][view] if view < len(captions[row]) else []):
                draw.text((left, top + thumb_size + line * LINE_HEIGHT),
                          fit_text(draw, text, font, thumb_size), fill=TEXT, font=font)
    return sheet


def check_sheet_size(width: int, height: int) -> None:
    beyond = IMAGE_PIXELS.exceeded_by(width * height)
    if beyond:
        raise ShardSetError(f"The sheet would be {width} x {height} pixels, {beyond}; draw fewer groups or "
                            "smaller thumbnails (--groups, --thumb-size).")


def view_captions(group: Group) -> list[list[str]]:
    """Per view, the lines ``direction amount`` of a steered group's walk amounts (none for the
    anchor, whose amounts are zero); [] for groups that were not steered."""
    alphas = group.meta.get("alphas") if isinstance(group.meta, dict) else None
    if not isinstance(alphas, list) or not all(isinstance(view, dict) for view in alphas):
        return []
    return [[] if view == 0 else [f"{name} {format_amount(value)}" for name, value in amounts.items()
                                  if isinstance(value, (int, float))]
            for view, amounts in enumerate(alphas)]


def format_amount(value: float) -> str:
    return f"{value:+.1f}" if abs(value) >= 10 else f"{value:+.2f}"


def read_groups(shard_set: ShardSet, start: int, count: int) -> list[Group]:
    """Groups start..start+count-1, read from the shards that hold them only, each to its end so
    that its sha256 is checked against the manifest."""
    stop = start + count
    shards = [index for index, row in enumerate(shard_set.shard_rows)
              if row["last_anchor"] >= start and row["first_anchor"] < stop]
    return [group for index in shards for group in shard_set.shard_groups(index) if start <= group.anchor < stop]


def row_label(shard_set: ShardSet, group: Group) -> list[str]:
    lines = [f"anchor {group.anchor}"]
    if group.label is not None:
        lines.append(shard_set.class_names[group.label])
    return lines


def fit_text(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
             width: int = LABEL_WIDTH - 2 * MARGIN) -> str:
    """The text, shortened with an ellipsis to fit ``width`` pixels (the label column's)."""
    room = width
    if draw.textlength(text, font=font) <= room:
        return text
    while text and draw.textlength(text + "…", font=font) > room:
        text = text[:-1]
    return text + "…"


def thumbnail(group: Group, view: int, size: int) -> Image.Image:
    image = Image.fromarray(decode_group_view(group, view).permute(1, 2, 0).numpy())
    return ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC)
