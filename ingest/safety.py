"""Checks that run before any parser sees a file (docs/security.md cases 7, 8 and 10).

Zip containers (archives and Office files) are judged from their central directory before
anything is expanded: entry count, total size and compression ratio. Office XML parts are then
streamed, with real byte counts, and refused if they declare a DTD: OOXML never needs one, and
a DTD is how entity expansion (billion laughs) and external entities (XXE) get in.
The parse itself still runs in a child process with memory and time limits (ingest/sandbox.py);
these checks exist so that the common attacks are refused quickly, with a precise reason.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ingest.errors import TooLarge, UnsafeFile
from ingest.formats import Container, FileKind


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 2 * 1024**3
    # Ordinary documents compress 2-20x and very repetitive XML up to ~100x; bombs go far beyond.
    max_ratio: float = 200.0
    # Small members may compress absurdly well (an empty sheet); the ratio matters above this.
    ratio_applies_above: int = 1024 * 1024


_DTD_MARKERS = [
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be")
]
_SCAN_BLOCK = 1024 * 1024
_OVERLAP = max(len(m) for m in _DTD_MARKERS)


def _open_zip(source: Path | IO[bytes], filename: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsafeFile(f"{filename!r} is not a readable zip container: {exc}") from exc


def check_zip_limits(archive: zipfile.ZipFile, filename: str, limits: ArchiveLimits) -> None:
    """Refuse a zip bomb from its central directory, before expanding anything."""
    members = archive.infolist()
    if len(members) > limits.max_entries:
        raise TooLarge(
            f"{filename!r} holds {len(members)} entries; the limit is {limits.max_entries}"
        )
    total = 0
    for member in members:
        total += member.file_size
        if member.file_size > limits.ratio_applies_above:
            ratio = member.file_size / max(member.compress_size, 1)
            if ratio > limits.max_ratio:
                raise UnsafeFile(
                    f"{filename!r} looks like a zip bomb: {member.filename!r} expands "
                    f"{ratio:.0f}x (limit {limits.max_ratio:.0f}x)"
                )
    if total > limits.max_total_bytes:
        raise TooLarge(
            f"{filename!r} expands to {total / 1024**2:.0f} MB; the limit is "
            f"{limits.max_total_bytes / 1024**2:.0f} MB"
        )


def _stream_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Iterator[bytes]:
    """Yield a member's bytes, refusing to produce more than its declared size.

    zipfile already stops at the declared size; counting here as well keeps the guarantee
    independent of the library's internals, since the declared size is what was checked.
    """
    produced = 0
    with archive.open(member) as stream:
        while block := stream.read(_SCAN_BLOCK):
            produced += len(block)
            if produced > member.file_size:
                raise UnsafeFile(f"{member.filename!r} expands beyond its declared size")
            yield block


def check_office_xml(source: Path | IO[bytes], filename: str, limits: ArchiveLimits) -> None:
    """Refuse an Office file that is a zip bomb or whose XML parts declare a DTD or entity."""
    with _open_zip(source, filename) as archive:
        check_zip_limits(archive, filename, limits)
        for member in archive.infolist():
            if not member.filename.lower().endswith((".xml", ".rels", ".vml")):
                continue
            tail = b""
            for block in _stream_member(archive, member):
                window = tail + block
                if any(marker in window for marker in _DTD_MARKERS):
                    raise UnsafeFile(
                        f"{filename!r} contains an XML document type declaration in "
                        f"{member.filename!r}; Office files never need one, and it is how XML "
                        "entity attacks work, so the file is refused"
                    )
                tail = window[-_OVERLAP:]


def check_before_parse(
    source: Path | IO[bytes], filename: str, kind: FileKind, limits: ArchiveLimits
) -> None:
    """The container-level checks for `kind` (content sniffing is `formats.check_content`)."""
    if kind.container is Container.OOXML:
        check_office_xml(source, filename, limits)
    elif kind.container is Container.ARCHIVE:
        with _open_zip(source, filename) as archive:
            check_zip_limits(archive, filename, limits)


# --- archives expanded into documents --------------------------------------------------


@dataclass(frozen=True)
class ArchiveMember:
    """One file inside an uploaded archive. `path` is a clean relative POSIX path."""

    path: str
    size: int
    info: zipfile.ZipInfo

    @property
    def encrypted(self) -> bool:
        return bool(self.info.flag_bits & 0x1)


def _member_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not info.flag_bits & 0x800:
        # No UTF-8 flag: zipfile decoded the name as cp437. Archives made on Chinese Windows
        # store GBK there; recover it when the bytes are valid GBK.
        raw = name.encode("cp437", errors="replace")
        for encoding in ("utf-8", "gbk"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
    return name


_UNSAFE_PATH = re.compile(r"(^|/)\.\.(/|$)")


def clean_member_path(name: str) -> str | None:
    """A relative path without '..', drive letters or leading slashes; None if nothing is left.

    The path is only ever metadata (files are stored under opaque names), but it is shown to
    users and must not claim to live outside the archive.
    """
    name = name.replace("\\", "/")
    name = re.sub(r"^[A-Za-z]:", "", name).lstrip("/")
    if _UNSAFE_PATH.search(name):
        return None
    cleaned = posixpath.normpath(name) if name else ""
    return None if cleaned in ("", ".") else cleaned


def member_path_problem(name: str) -> str | None:
    """Why an archive member's name is refused, or None: a path that climbs out of the
    archive, an absolute path or a drive letter. Such a member is never stored under any
    cleaned-up form of its name (the uploader is told instead: it is listed with this)."""
    normalized = name.replace("\\", "/")
    if _UNSAFE_PATH.search(normalized):
        return "refused: its path climbs out of the archive (..)"
    if re.match(r"^[A-Za-z]:", normalized):
        return "refused: its path starts with a drive letter"
    if normalized.startswith("/"):
        return "refused: its path is absolute"
    return None


@dataclass
class ArchiveListing:
    """What an archive holds: the members to ingest, and (name, reason) for every file
    entry that will not be, so the uploader is told about each one."""

    members: list[ArchiveMember]
    skipped: list[tuple[str, str]]


def archive_listing(path: Path, filename: str, limits: ArchiveLimits) -> ArchiveListing:
    """The files of an archive, after the bomb checks; directories are not files."""
    listing = ArchiveListing([], [])
    with _open_zip(path, filename) as archive:
        check_zip_limits(archive, filename, limits)
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = _member_name(info)
            if (problem := member_path_problem(name)) is not None:
                listing.skipped.append((name, problem))
                continue
            cleaned = clean_member_path(name)
            if cleaned is None:
                listing.skipped.append((name, "refused: the entry has no usable name"))
                continue
            base = posixpath.basename(cleaned)
            # macOS resource forks and Windows thumbnails are not documents.
            if cleaned.startswith("__MACOSX/") or base.startswith("._") or base == "Thumbs.db":
                listing.skipped.append(
                    (cleaned, "skipped: operating-system metadata, not a document")
                )
                continue
            listing.members.append(ArchiveMember(cleaned, info.file_size, info))
    return listing


def archive_members(path: Path, filename: str, limits: ArchiveLimits) -> list[ArchiveMember]:
    """The files of an archive to ingest (archive_listing without the skipped ones)."""
    return archive_listing(path, filename, limits).members


def copy_member(path: Path, member: ArchiveMember, out: IO[bytes]) -> None:
    """Expand one member into `out`, never producing more than its declared size."""
    with zipfile.ZipFile(path) as archive:
        for block in _stream_member(archive, member.info):
            out.write(block)
