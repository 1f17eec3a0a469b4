"""Prices as configuration with effective dates (ccanalytics/cost/pricing.yaml, or CCA_PRICING_FILE).

``load()`` validates the file and returns a ``PriceBook``; ``PriceBook.rows()`` flattens it into
(component, name, valid_from, valid_to, parameters) rows that the cost SQL joins on the call's day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ccanalytics.core.errors import ConfigError

COMPONENTS: dict[str, tuple[str, ...]] = {
    "stt": ("usd_per_increment", "increment_seconds", "fixed_usd_per_month"),
    "llm": ("input_per_1m", "output_per_1m", "cached_input_per_1m"),
    "tts": ("usd_per_1m_chars",),
    "telephony": ("usd_per_minute",),
}
FAR_FUTURE = date(9999, 12, 31)


@dataclass(frozen=True)
class Price:
    component: str
    name: str
    valid_from: date
    valid_to: date  # exclusive
    params: dict[str, float]


@dataclass(frozen=True)
class PriceBook:
    prices: tuple[Price, ...]
    source: str

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "component": p.component,
                "name": p.name,
                "valid_from": p.valid_from.isoformat(),
                "valid_to": p.valid_to.isoformat(),
                **{k: p.params.get(k) for k in COMPONENTS[p.component]},
            }
            for p in self.prices
        ]

    def at(self, component: str, name: str, day: date) -> Price | None:
        for p in self.prices:
            if p.component == component and p.name == name and p.valid_from <= day < p.valid_to:
                return p
        return None


def load(path: str | Path | None = None) -> PriceBook:
    """The price book from ``path`` (default: the bundled pricing.yaml). Invalid files raise ConfigError."""
    if path is None:
        text = resources.files("ccanalytics.cost").joinpath("pricing.yaml").read_text(encoding="utf-8")
        source = "ccanalytics/cost/pricing.yaml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the pricing file {path}: {exc.strerror}") from None
        source = str(path)
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from None
    prices = []
    for component, names in doc.items():
        if component not in COMPONENTS:
            raise ConfigError(f"{source}: unknown component {component!r} (known: {', '.join(COMPONENTS)})")
        for name, entries in (names or {}).items():
            if not isinstance(entries, list) or not entries:
                raise ConfigError(f"{source}: {component}.{name} must be a list of dated prices")
            dated = []
            for e in entries:
                start = e.get("from") if isinstance(e, dict) else None
                if not isinstance(start, date):
                    raise ConfigError(f"{source}: {component}.{name}: every entry needs 'from: YYYY-MM-DD'")
                params = {k: v for k, v in e.items() if k != "from"}
                unknown = set(params) - set(COMPONENTS[component])
                if unknown:
                    raise ConfigError(f"{source}: {component}.{name}: unknown fields {', '.join(sorted(unknown))}")
                for k, v in params.items():
                    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                        raise ConfigError(f"{source}: {component}.{name}.{k} must be a non-negative number")
                dated.append((start, {k: float(v) for k, v in params.items()}))
            dated.sort(key=lambda x: x[0])
            if len({d for d, _ in dated}) != len(dated):
                raise ConfigError(f"{source}: {component}.{name} has two prices from the same day")
            for i, (start, params) in enumerate(dated):
                end = dated[i + 1][0] if i + 1 < len(dated) else FAR_FUTURE
                prices.append(Price(component, name, start, end, params))
    return PriceBook(tuple(prices), source)
