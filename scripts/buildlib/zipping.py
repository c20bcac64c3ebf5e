"""The reproducible zip of a package directory, and its sha256."""

from __future__ import annotations

import calendar
import hashlib
import os
import time
import zipfile
from pathlib import Path

ZipDate = tuple[int, int, int, int, int, int]

ZIP_DATE: ZipDate = (1980, 1, 1, 0, 0, 0)


def zip_date() -> ZipDate:
    """``SOURCE_DATE_EPOCH`` (UTC, not before 1980, even seconds) or 1980-01-01 00:00:00."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return ZIP_DATE
    try:
        epoch = int(raw)
    except ValueError:
        raise SystemExit(f"SOURCE_DATE_EPOCH must be an integer (seconds since 1970), got {raw!r}") from None
    epoch = max(epoch, calendar.timegm((*ZIP_DATE, 0, 0, 0)))
    moment = time.gmtime(epoch)
    # DOS times count seconds in twos.
    return (moment.tm_year, moment.tm_mon, moment.tm_mday, moment.tm_hour, moment.tm_min, moment.tm_sec & ~1)


def make_zip(source: Path, destination: Path) -> None:
    """A reproducible zip: sorted entries, one fixed date, normalised permissions."""
    date = zip_date()
    destination.unlink(missing_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        files = {p.relative_to(source).as_posix(): p for p in source.rglob("*") if p.is_file()}
        for name, path in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=date)
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3  # Unix, whatever system builds it
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
