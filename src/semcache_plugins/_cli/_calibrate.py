"""``semcache calibrate``: choose a similarity threshold from labelled pairs, honestly.

Every argument and the pair counts are checked before the model embeds anything; a threshold
that misses its target (judged by the 95% bound of ``_calibrate_bound``) is never written to a
settings file unless ``--force``, and pairs too few for the target are refused unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._calibrate import calibrate, calibration_pair, check_support
from .._embedding._embedder import Embedder
from .._errors import CalibrationError, ConfigurationError
from .._precision._calibrate_bound import check_target, negatives_needed
from .._settings import CacheSettings
from ._io import command, jsonl_records, progress_bar, write_threshold

__all__ = ["register"]


def _settings_file(value: str | None) -> Path | None:
    """The ``--write-settings`` path, checked before any embedding: its folder must exist."""
    if value is None:
        return None
    path = Path(value)
    if path.is_dir() or not path.parent.is_dir():
        raise ConfigurationError(f"--write-settings {value}: not a file in an existing folder")
    return path


def _calibrate(args: argparse.Namespace) -> int:
    check_target(args.target)  # every argument is checked before anything is embedded
    settings_file = _settings_file(args.write_settings)
    path = Path(args.file)
    pairs = jsonl_records(path, calibration_pair)
    positives = sum(pair.should_hit for pair in pairs)
    if not pairs:
        raise CalibrationError(f"{path}: no labelled pairs")
    try:
        check_support(positives, len(pairs) - positives, args.target)
    except CalibrationError as exc:
        if not args.force:
            raise CalibrationError(f"{exc}; --force calibrates anyway") from exc
        print(f"semcache: WARNING: {exc} (--force: calibrating anyway)", file=sys.stderr)
    embedder = Embedder.from_settings(CacheSettings())
    with progress_bar(len(pairs), "calibrate") as step:
        result = calibrate(
            pairs,
            args.target,
            guards=not args.no_guards,
            embedder=embedder,
            progress=step,
            force=True,  # checked above
        )
    print(result.table())
    threshold = f"SEMCACHE_SIMILARITY_THRESHOLD={result.threshold:.2f}"
    if not result.target_met:
        if settings_file is not None and not args.force:
            raise CalibrationError(
                f"threshold {result.threshold:.2f} does not meet the target; "
                f"{settings_file} not written (--force writes it anyway)"
            )
        print(
            f"semcache: WARNING: threshold {result.threshold:.2f} does not meet the target "
            f"false-hit rate {args.target:.2%}",
            file=sys.stderr,
        )
    if settings_file is not None:
        write_threshold(settings_file, result.threshold)
        print(f"wrote {threshold} to {settings_file}")
    return 0


def register(groups: Any) -> None:
    """Add ``calibrate``."""
    cal = command(
        groups,
        "calibrate",
        "choose a similarity threshold from labelled pairs",
        'Each line: {"cached": ..., "query": ..., "should_hit": true|false}. Sweeps thresholds '
        "0.50..0.99 and picks the lowest whose false-hit rate is within the target with 95% "
        "confidence (exact binomial bound): a target r needs about 3/r must-not-hit pairs "
        f"({negatives_needed(0.01)} for 0.01); fewer are refused before anything is embedded, "
        "and a threshold that misses the target is never written, unless --force.",
    )
    cal.add_argument("file", metavar="FILE.jsonl")
    cal.add_argument("--target", type=float, default=0.01, help="max false-hit rate (0.01)")
    cal.add_argument("--no-guards", action="store_true", help="calibrate without the guards")
    cal.add_argument("--write-settings", metavar="PATH", help="set the threshold in a .env file")
    cal.add_argument(
        "--force",
        action="store_true",
        help="calibrate on too few pairs and write a threshold that misses the target (warns)",
    )
    cal.set_defaults(handler=_calibrate)
