"""QR images of ticket payloads: PNG for emails and downloads, SVG for the ticket page (sharp at any size)."""

import io

import qrcode
import qrcode.image.svg
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M
from qrcode.exceptions import DataOverflowError

FIXED_MASK = 0


# The smallest version found for a payload of each length: payloads are one fixed format, so the
# library's search for it (building the data at several sizes, a quarter of a code's cost) runs once.
_VERSIONS: dict[int, int] = {}


def _code(payload: str) -> qrcode.QRCode:
    # Level M survives a cracked phone screen or a crease in a printout; the payload still fits a
    # version 6 code, large modules at phone-screen size.
    # A fixed mask: every one of the eight gives a valid code that phones and door scanners read,
    # and choosing the "best" (the library scores all eight) was most of the cost of a ticket email.
    version = _VERSIONS.get(len(payload))
    code = qrcode.QRCode(
        version=version, error_correction=ERROR_CORRECT_M, border=4, box_size=8, mask_pattern=FIXED_MASK
    )
    code.add_data(payload)
    try:
        code.make(fit=version is None)
    except DataOverflowError:  # a same-length payload that needs more room (another encoding mode)
        code.version = None
        code.make(fit=True)
    _VERSIONS.setdefault(len(payload), code.version)
    return code


def qr_png(payload: str, *, box_size: int = 8) -> bytes:
    # One pixel per module, scaled up: the same image as qrcode's PIL factory, which draws each of
    # the ~2,000 modules as a rectangle and cost three times as much per ticket email.
    modules = _code(payload).get_matrix()  # border included
    size = len(modules)
    image = Image.new("1", (size, size))
    image.putdata([0 if dark else 1 for row in modules for dark in row])
    out = io.BytesIO()
    image.resize((size * box_size, size * box_size), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()


def qr_svg(payload: str) -> str:
    image = _code(payload).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return image.to_string(encoding="unicode")
