"""The lake's retention: partitions past their horizon removed (turns and tool calls sooner than calls and scores)."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.datalake.export import staging_dir
from ccanalytics.datalake.read import partition_day
from ccanalytics.datalake.schema import TABLES, TRANSCRIPT_TABLES


@dataclass(frozen=True)
class LakePurge:
    """Partitions past retention: removed, or (dry run) that would be."""

    transcripts_cutoff: date  # turns and tool calls of days before this go
    aggregates_cutoff: date  # calls and scores of days before this go
    dry_run: bool
    removed: dict[str, list[date]]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["transcripts_cutoff"] = self.transcripts_cutoff.isoformat()
        out["aggregates_cutoff"] = self.aggregates_cutoff.isoformat()
        out["removed"] = {t: [d.isoformat() for d in days] for t, days in self.removed.items()}
        return out


def purge(
    lake_dir: str | Path,
    today: date,
    *,
    transcripts_days: int = 90,
    aggregates_days: int = 365,
    dry_run: bool = False,
) -> LakePurge:
    """Remove the lake partitions past retention: turns and tool calls of days more than
    ``transcripts_days`` before ``today``, calls and scores past ``aggregates_days``. A partition
    directory is first renamed into the staging area, then deleted, so readers never see half of it."""
    if transcripts_days < 1 or aggregates_days < transcripts_days:
        raise InvalidArgument("retention needs 1 <= transcripts_days <= aggregates_days")
    lake = Path(lake_dir)
    cut_t, cut_a = today - timedelta(days=transcripts_days), today - timedelta(days=aggregates_days)
    removed: dict[str, list[date]] = {}
    for table in TABLES:
        cutoff = cut_t if table in TRANSCRIPT_TABLES else cut_a
        root = lake / table
        old = sorted(
            (day, path)
            for path in (root.iterdir() if root.is_dir() else ())
            if (day := partition_day(path.name)) is not None and day < cutoff
        )
        removed[table] = [day for day, _ in old]
        if not dry_run:
            for _day, path in old:
                gone = staging_dir(lake) / f"purged-{table}-{path.name}-{uuid.uuid4().hex}"
                os.replace(path, gone)
                shutil.rmtree(gone)
    return LakePurge(cut_t, cut_a, dry_run, removed)
