"""Batch manifests: JSONL or CSV files of requests, one a row, read into checked rows.

A row holds the contract's request fields (`prompt`, `duration`, `size`, `reference_image`,
`options`, ...) plus an optional `id` (default: its line number), `provider` (default:
the configured one) and `account` (a `[accounts.NAME]` of the configuration: another key
of a provider, with its own limits). JSONL rows are JSON objects; CSV cells are parsed by the field's type
(numbers for `duration`, `fps`, `motion_strength`, a whole number for `seed`, JSON for
`options`; an empty cell is "not given"). A relative `reference_image` path is resolved
against the manifest's folder, so a manifest and its images travel together.

Reading never stops at the first mistake: every bad row becomes a `RowProblem` naming its
line, the field and what to change, so a person fixes the whole file in one pass.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .contract import VideoRequest
from .errors import ValidationError

__all__ = ["ManifestRow", "RowProblem", "read_manifest", "rows_from_requests"]

_REQUEST_FIELDS = tuple(field.name for field in attrs.fields(VideoRequest))
_ROW_FIELDS = frozenset((*_REQUEST_FIELDS, "id", "provider", "account"))
_NUMBERS = frozenset({"duration", "fps", "motion_strength"})
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@attrs.frozen(kw_only=True)
class ManifestRow:
    """One request of a batch: its id, where it came from, and the provider it goes to."""

    id: str
    request: VideoRequest
    #: None: the configured provider (or the account's).
    provider: str | None = None
    #: `[accounts.NAME]` whose credential the row runs under (None: the provider's own settings).
    account: str | None = None
    #: 1-based line (JSONL) or record line (CSV) in the manifest; 0 for requests given in Python.
    line: int = 0


@attrs.frozen(kw_only=True)
class RowProblem:
    """Why one row cannot run: `message` says what to change."""

    line: int
    id: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "row"
        if self.id is not None:
            where += f" (id {self.id})"
        return f"{where}: {self.field or 'row'}: {self.message}"


def _resolve_image(value: Any, folder: Path) -> Any:
    """A relative local path, resolved against the manifest's folder; anything else as given."""
    if not isinstance(value, str) or not value.strip():
        return value
    text = value.strip()
    if "://" in text or text.lower().startswith("data:") or text.startswith("~"):
        return text
    path = Path(text)
    return text if path.is_absolute() else str((folder / path).resolve())


def _csv_cell(name: str, raw: str) -> Any:
    """A CSV cell as the field's type; raises ValueError saying what was expected."""
    text = raw.strip()
    if name in _NUMBERS:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if name == "seed":
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"{text!r} is not a whole number")
        return int(text)
    if name == "options":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'not JSON ({exc.msg}); write it as a JSON object, e.g. {{"bailian_wan": {{"audio": false}}}}'
            ) from None
    return raw if name in ("prompt", "negative_prompt") else text


def _build(fields: Mapping[str, Any], line: int, folder: Path, seen: set[str]) -> ManifestRow | RowProblem:
    raw_id = fields.get("id")
    row_id = str(line) if raw_id is None or raw_id == "" else str(raw_id).strip()
    if isinstance(raw_id, (bool, float)) or not _ID.fullmatch(row_id):
        return RowProblem(
            line=line,
            id=None,
            field="id",
            message=f"{raw_id!r} is not an id: use letters, digits, '.', '_', ':' or '-' (at most 128)",
        )
    if row_id in seen:
        return RowProblem(line=line, id=row_id, field="id", message="another row has this id: ids must be unique")
    seen.add(row_id)
    unknown = sorted(set(fields) - _ROW_FIELDS)
    if unknown:
        return RowProblem(
            line=line,
            id=row_id,
            field=unknown[0],
            message=f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(sorted(_ROW_FIELDS))} "
            '(provider settings go under options, e.g. {"bailian_wan": {"audio": false}})',
        )
    provider = fields.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider.strip()):
        return RowProblem(line=line, id=row_id, field="provider", message="must be a provider name (a string)")
    account = fields.get("account")
    if account is not None and (not isinstance(account, str) or not account.strip()):
        return RowProblem(
            line=line, id=row_id, field="account", message="must name an [accounts.NAME] of the configuration"
        )
    values = {name: fields[name] for name in _REQUEST_FIELDS if name in fields and fields[name] is not None}
    if "prompt" not in values:
        return RowProblem(line=line, id=row_id, field="prompt", message="prompt is required")
    if "reference_image" in values:
        values["reference_image"] = _resolve_image(values["reference_image"], folder)
    try:
        request = VideoRequest(**values)
    except ValidationError as exc:
        return RowProblem(line=line, id=row_id, field=exc.field, message=str(exc))
    except (TypeError, ValueError) as exc:
        return RowProblem(line=line, id=row_id, field=None, message=str(exc))
    return ManifestRow(
        id=row_id,
        request=request,
        provider=provider.strip() if provider else None,
        account=account.strip() if account else None,
        line=line,
    )


def _jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any] | RowProblem]]:
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, RowProblem(line=number, id=None, field=None, message=f"not JSON: {exc.msg}")
                continue
            if not isinstance(value, dict):
                yield number, RowProblem(line=number, id=None, field=None, message="a row must be a JSON object")
                continue
            yield number, value


def _csv(path: Path) -> Iterable[tuple[int, dict[str, Any] | RowProblem]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or ()]
        reader.fieldnames = header
        for record in reader:
            number = reader.line_num
            if None in record:
                yield number, RowProblem(line=number, id=None, field=None, message="more cells than the header has")
                continue
            if all(not (cell or "").strip() for cell in record.values()):
                continue
            fields: dict[str, Any] = {}
            problem = None
            for name, cell in record.items():
                if cell is None or cell.strip() == "":
                    continue
                try:
                    fields[name] = _csv_cell(name, cell) if name in _ROW_FIELDS else cell
                except ValueError as exc:
                    row_id = (record.get("id") or "").strip() or str(number)
                    problem = RowProblem(line=number, id=row_id, field=name, message=str(exc))
                    break
            yield number, problem or fields


def read_manifest(path: str | Path) -> tuple[list[ManifestRow], list[RowProblem]]:
    """Every row of a `.jsonl`/`.json` or `.csv` manifest, and every problem (both in file order)."""
    manifest = Path(path).expanduser()
    if not manifest.is_file():
        raise ValidationError(f"manifest {str(manifest)!r} does not exist", field="manifest")
    suffix = manifest.suffix.lower()
    if suffix == ".csv":
        records = _csv(manifest)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        records = _jsonl(manifest)
    else:
        raise ValidationError(
            f"manifest {manifest.name!r}: name it .jsonl (one JSON object a line) or .csv (a header row)",
            field="manifest",
        )
    folder = manifest.resolve().parent
    rows: list[ManifestRow] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    try:
        for number, record in records:
            built = record if isinstance(record, RowProblem) else _build(record, number, folder, seen)
            (problems if isinstance(built, RowProblem) else rows).append(built)  # type: ignore[arg-type]
    except UnicodeDecodeError as exc:
        raise ValidationError(f"manifest {manifest.name!r} is not UTF-8 text: {exc}", field="manifest") from exc
    except csv.Error as exc:
        raise ValidationError(f"manifest {manifest.name!r} is not valid CSV: {exc}", field="manifest") from exc
    if not rows and not problems:
        raise ValidationError(f"manifest {manifest.name!r} has no rows", field="manifest")
    return rows, problems


def rows_from_requests(requests: Iterable[VideoRequest | tuple[str, VideoRequest] | ManifestRow]) -> list[ManifestRow]:
    """Rows for requests given in Python: `(id, request)` pairs, rows, or bare requests (ids 1, 2, ...)."""
    rows: list[ManifestRow] = []
    seen: set[str] = set()
    for number, item in enumerate(requests, 1):
        if isinstance(item, ManifestRow):
            row = item
        elif isinstance(item, tuple):
            row_id, request = item
            row = ManifestRow(id=str(row_id), request=request, line=number)
        elif isinstance(item, VideoRequest):
            row = ManifestRow(id=str(number), request=item, line=number)
        else:
            raise ValidationError(f"item {number} is a {type(item).__name__}, not a VideoRequest", field="requests")
        if row.id in seen:
            raise ValidationError(f"two requests have the id {row.id!r}: ids must be unique", field="id")
        seen.add(row.id)
        rows.append(row)
    return rows
