"""mtdata.image_header: one size limit for every command that opens an image, one line when it is hit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mtdata.check.verify import verify_image
from mtdata.errors import InputError
from mtdata.image_header import MAX_IMAGE_PIXELS, ImageTooLarge, read_image_header
from tests.mtdata.factories import png_bomb


def _header_only_png(tmp_path, width: int, height: int):
    """A PNG whose header says width x height (enough for a header reader; the pixels are a bomb)."""
    path = tmp_path / f"{width}x{height}.png"
    path.write_bytes(png_bomb(width, height))
    return path


@pytest.mark.parametrize(
    "width, height",
    [
        pytest.param(20_000, 20_000, id="20000x20000: over twice Pillow's limit"),
        pytest.param(10_000, 9_000, id="10000x9000: over the limit, under twice it"),
        pytest.param(1_000_000, 100, id="a million pixels wide"),
    ],
)
def test_every_reader_refuses_an_image_over_the_limit_with_one_reason(tmp_path, width, height):
    path = _header_only_png(tmp_path, width, height)
    with pytest.raises(ImageTooLarge) as e:
        read_image_header(path)  # export and view read headers here
    check = verify_image(path)  # check and the trainer decode here
    assert [f.rule for f in check.findings] == ["image_too_large"] and not check.ok
    assert check.findings[0].message == e.value.reason
    assert f"{width} x {height}" in e.value.reason or "over the limit" in e.value.reason
    assert "\n" not in str(e.value)


def test_an_image_at_the_limit_is_read(tmp_path):
    width = 9459
    height = MAX_IMAGE_PIXELS // width
    path = _header_only_png(tmp_path, width, height)
    assert read_image_header(path).stored_wh == (width, height)


def test_header_follows_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path, "JPEG", exif=exif)
    header = read_image_header(path)
    assert header.stored_wh == (40, 30) and header.resolution_wh == (30, 40)
    assert verify_image(path).resolution_wh == (30, 40)


def _png_with_exif_chunk(orientation: int, after_image_data: bool) -> bytes:
    """A 40 x 30 PNG with an eXIf chunk before its IDAT or after it."""
    import struct
    import zlib

    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()[6:]  # the TIFF block, without JPEG's "Exif\0\0" prefix
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    data = cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))[1].tobytes()
    at = data.rfind(b"IEND") - 4 if after_image_data else data.find(b"IDAT") - 4
    return data[:at] + chunk + data[at:]


@pytest.mark.parametrize("after_image_data, loaded_wh", [
    pytest.param(False, (30, 40), id="eXIf before IDAT: rotated, as OpenCV and the trainer load it"),
    pytest.param(True, (30, 40), id="eXIf after IDAT: OpenCV reads it there too"),
])
def test_png_exif_is_read_where_opencv_reads_it(tmp_path, after_image_data, loaded_wh):
    path = tmp_path / "rotated.png"
    data = _png_with_exif_chunk(6, after_image_data)
    path.write_bytes(data)
    trainer_wh = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[1::-1]
    assert trainer_wh == loaded_wh
    assert read_image_header(path).resolution_wh == loaded_wh
    check = verify_image(path)
    assert check.resolution_wh == loaded_wh and [f.rule for f in check.findings] == ["image_exif_rotated"]


def test_an_xmp_orientation_is_not_exif(tmp_path):
    """Pillow's getexif also takes XMP's tiff:Orientation; OpenCV (the trainer) and so every command do not."""
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    path = tmp_path / "xmp.jpg"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path, xmp=xmp)
    assert Image.open(path).getexif().get(0x0112) == 6
    assert cv2.imread(str(path)).shape[1::-1] == (40, 30)
    assert read_image_header(path).resolution_wh == (40, 30) == verify_image(path).resolution_wh


def test_png_exif_after_a_long_head_is_found(tmp_path, monkeypatch):
    """The header reader reads the first bytes only; a longer PNG is walked on, chunk by chunk, for its eXIf."""
    import mtdata.image_header as image_header

    path = tmp_path / "rotated.png"
    data = _png_with_exif_chunk(6, after_image_data=True)
    path.write_bytes(data)
    monkeypatch.setattr(image_header, "_HEAD_BYTES", data.find(b"eXIf") + 2)  # the chunk starts in the head, ends past it
    assert read_image_header(path).resolution_wh == (30, 40)
    path.write_bytes(cv2.imencode(".png", np.zeros((30, 40, 3), np.uint8))[1].tobytes())
    assert read_image_header(path).resolution_wh == (40, 30)


def test_not_an_image(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"hello")
    with pytest.raises(InputError, match="not an image"):
        read_image_header(path)


def test_a_format_only_opencv_reads_is_measured_after_decoding(tmp_path, monkeypatch):
    """When Pillow cannot read the header, OpenCV decodes and the same limit applies to what it decoded."""
    import mtdata.check.verify as verify
    import mtdata.image_header as image_header

    path = tmp_path / "a.png"
    path.write_bytes(cv2.imencode(".png", np.zeros((40, 50), np.uint8))[1].tobytes())
    monkeypatch.setattr(verify, "header_of", lambda *a, **k: None)  # as for a format Pillow does not know
    monkeypatch.setattr(verify, "MAX_IMAGE_PIXELS", 1999)
    assert [f.rule for f in verify_image(path).findings] == ["image_too_large"]
    assert image_header.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS


def _encoded(ext: str, w: int, h: int, **params) -> bytes:
    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if params.get("progressive") else []
    return cv2.imencode(ext, np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8), flags)[1].tobytes()


def _pillow(data: bytes, fmt: str, **kw) -> bytes:
    import io

    out = io.BytesIO()
    Image.open(io.BytesIO(data)).save(out, fmt, **kw)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_encoded(".jpg", 37, 21), id="baseline jpeg"),
        pytest.param(_encoded(".jpg", 64, 48, progressive=True), id="progressive jpeg"),
        pytest.param(_encoded(".png", 37, 21), id="png"),
        pytest.param(_pillow(_encoded(".png", 30, 20), "JPEG", icc_profile=b"x" * 5000, comment=b"\xff\xd9 hi"), id="jpeg with segments before its frame"),
        pytest.param(png_bomb(20_000, 20_000), id="png bomb"),
    ],
)
def test_quick_size_is_pillows(data):
    """The quick reader of verify_image (no Pillow on most images) gives Pillow's size, or none at all."""
    import io

    from mtdata.image_header import quick_stored_wh

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Image, "MAX_IMAGE_PIXELS", None)
        pillow = Image.open(io.BytesIO(data)).size
    assert quick_stored_wh(data) == pillow


@pytest.mark.parametrize("seed", range(200))
def test_quick_size_on_damaged_jpegs_is_pillows_or_none(seed):
    import io

    from mtdata.image_header import quick_stored_wh

    rng = np.random.default_rng(seed)
    data = bytearray(_encoded(".jpg", 40, 30))
    for _ in range(int(rng.integers(1, 4))):
        data[int(rng.integers(2, 200))] = int(rng.integers(0, 256))
    data = bytes(data)
    quick = quick_stored_wh(data)
    try:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(Image, "MAX_IMAGE_PIXELS", None)
            pillow = Image.open(io.BytesIO(data)).size
    except Exception:  # noqa: BLE001  (Pillow refuses it: OpenCV decides in verify_image)
        pillow = None
    assert quick is None or quick == pillow or pillow is None
