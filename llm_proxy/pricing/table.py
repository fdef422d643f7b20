"""The price table: the shipped TOML, a user's overrides, model resolution and cost arithmetic.

``PriceTable.cost`` runs once per record in the capture worker, so everything it needs is
prepared at load time (plain dicts keyed by lower-case names) and the outcome of resolving a
(provider, model) pair is cached; the arithmetic is a handful of float operations.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from llm_proxy.errors import ConfigError
from llm_proxy.pricing.names import candidates

__all__ = ["FREE_OPERATIONS", "PRICE_FIELDS", "WEEKDAYS", "Cost", "ModelPrice", "PriceTable",
           "TimeWindow", "to_micros"]

# Operations the providers do not bill (token counting, model listing).
FREE_OPERATIONS = frozenset({"count_tokens", "models"})
PRICE_FIELDS = ("input", "cached_input", "cache_write", "output", "reasoning", "request")
_MODEL_KEYS = frozenset(PRICE_FIELDS) | {"aliases", "since", "note", "long_context_threshold",
                                         "long_context", "time_windows"}
_WINDOW_KEYS = frozenset(PRICE_FIELDS) | {"hours_utc", "weekdays", "except_dates", "note"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = weekday (Monday = 0)
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
DAY_US = 86_400_000_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_TOP_KEYS = frozenset({"version", "checked", "currency", "provider_fallbacks", "vendor_prefixes",
                       "models"})
_PER_TOKEN = 1_000_000.0
_CACHE_LIMIT = 8192  # distinct (provider, model) pairs remembered; model names are untrusted


@dataclass(frozen=True, slots=True)
class Cost:
    """What one record cost, by component, and the price-table version that priced it."""

    cost_usd: float
    cost_input_usd: float
    cost_cached_input_usd: float
    cost_cache_write_usd: float
    cost_output_usd: float
    cost_reasoning_usd: float
    cost_request_usd: float
    price_version: str

    def as_columns(self) -> dict[str, float | str]:
        """The record columns of this cost (``cost_usd`` … ``price_version``)."""
        return {
            "cost_usd": self.cost_usd,
            "cost_input_usd": self.cost_input_usd,
            "cost_cached_input_usd": self.cost_cached_input_usd,
            "cost_cache_write_usd": self.cost_cache_write_usd,
            "cost_output_usd": self.cost_output_usd,
            "cost_reasoning_usd": self.cost_reasoning_usd,
            "cost_request_usd": self.cost_request_usd,
            "price_version": self.price_version,
        }


def to_micros(at: int | _dt.datetime) -> int:
    """A moment as integer microseconds since 1970-01-01 UTC (a record's ``ts``); naive = UTC."""
    if isinstance(at, _dt.datetime):
        if at.tzinfo is None:
            at = at.replace(tzinfo=_dt.UTC)
        return (at - _EPOCH) // _dt.timedelta(microseconds=1)
    return int(at)


def in_span(tod: int, start: int, end: int) -> bool:
    """Whether a time of day (µs) is in [start, end); start > end wraps past midnight,
    start == end is the whole day. ``reprice`` vectorises the same test."""
    if start < end:
        return start <= tod < end
    if start > end:
        return tod >= start or tod < end
    return True


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Recurring UTC hours in which a model has other prices (peak or off-peak rates).

    ``spans`` are (start, end) microseconds of the UTC day; ``weekdays`` the UTC weekdays it
    applies on (Monday = 0; None = every day); ``except_days`` UTC dates (days since
    1970-01-01) on which it does not apply (public holidays).
    """

    spans: tuple[tuple[int, int], ...]
    weekdays: frozenset[int] | None
    except_days: frozenset[int]
    price: ModelPrice

    def contains(self, at_us: int) -> bool:
        day, tod = divmod(at_us, DAY_US)
        if day in self.except_days:
            return False
        if self.weekdays is not None and (day + 3) % 7 not in self.weekdays:  # 1970-01-01: Thu
            return False
        return any(in_span(tod, start, end) for start, end in self.spans)

    def signature(self) -> tuple[Any, ...]:
        return (self.spans, self.weekdays, self.except_days, self.price.rates(0))


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's rates: USD per million tokens, ``request`` in USD per request.

    ``None`` for ``cached_input``/``cache_write`` means "the input rate", for ``reasoning``
    "the output rate" (the defaults the providers apply when they do not price them apart).
    """

    provider: str
    model: str
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    request: float = 0.0
    since: str | None = None
    long_context_threshold: int | None = None
    long_context: ModelPrice | None = None
    time_windows: tuple[TimeWindow, ...] = ()

    def rates(self, input_tokens: int, at: int | None = None
              ) -> tuple[float, float, float, float, float, float]:
        """(input, cached, cache write, output, reasoning, request) for a prompt of that size
        made at ``at`` (µs since the epoch, UTC; None: the standard prices).

        The first time window containing ``at`` replaces the standard prices.
        """
        p = self
        if at is not None and self.time_windows:
            for window in self.time_windows:
                if window.contains(at):
                    return window.price.rates(input_tokens)
        if self.long_context is not None and self.long_context_threshold is not None \
                and input_tokens > self.long_context_threshold:
            p = self.long_context
        return (p.input,
                p.input if p.cached_input is None else p.cached_input,
                p.input if p.cache_write is None else p.cache_write,
                p.output,
                p.output if p.reasoning is None else p.reasoning,
                p.request)


@dataclass(slots=True)
class PriceTable:
    """Model prices per provider, with aliases, fallbacks and a version stamped on every cost."""

    version: str
    models: dict[str, dict[str, ModelPrice]]  # provider -> name or alias (lower case) -> price
    provider_fallbacks: dict[str, list[str]] = field(default_factory=dict)
    vendor_prefixes: dict[str, str] = field(default_factory=dict)
    _cache: dict[tuple[str | None, str | None], ModelPrice | None] = field(default_factory=dict)
    _global: dict[str, ModelPrice | None] | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, user_file: str | Path | None = None) -> PriceTable:
        """The shipped table, overridden and extended by ``user_file`` when given.

        A bad user file is a ``ConfigError`` naming the file and the key.
        """
        base = _builtin_document()
        if user_file is None:
            return cls._from_document(base, source="built-in price table")
        path = Path(user_file).expanduser()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"price file {str(path)!r} does not exist (config key 'prices')") \
                from None
        except OSError as exc:
            raise ConfigError(f"price file {str(path)!r} cannot be read: {exc.strerror}") from None
        try:
            user = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        _validate(user, str(path))
        user_version = user.get("version") or f"sha256:{hashlib.sha256(raw).hexdigest()[:12]}"
        merged = _merge(base, user)
        merged["version"] = f"{base['version']}+user:{user_version}"
        return cls._from_document(merged, source=str(path))

    @classmethod
    def from_toml(cls, text: str, *, source: str = "price table") -> PriceTable:
        """A table from TOML text alone (no built-in prices): for tests and custom setups."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from None
        _validate(doc, source)
        if not doc.get("version"):
            raise ConfigError(f"{source}: needs version = \"…\"")
        return cls._from_document(doc, source=source)

    @classmethod
    def _from_document(cls, doc: Mapping[str, Any], *, source: str) -> PriceTable:
        models: dict[str, dict[str, ModelPrice]] = {}
        for provider, entries in doc.get("models", {}).items():
            table = models.setdefault(provider.lower(), {})
            for name, spec in entries.items():
                if "long_context" in spec and "time_windows" in spec:
                    raise ConfigError(f"{source}: models.{provider}.{name!r}: long_context and "
                                      "time_windows cannot be combined")
                if "input" not in spec or "output" not in spec:
                    raise ConfigError(f"{source}: models.{provider}.{name!r} needs both input and "
                                      "output (USD per million tokens)")
                price = _model_price(provider.lower(), name.lower(), spec)
                table[name.lower()] = price
                for alias in spec.get("aliases", ()):
                    table.setdefault(alias.lower(), price)
        return cls(
            version=str(doc["version"]),
            models=models,
            provider_fallbacks={k.lower(): [p.lower() for p in v]
                                for k, v in doc.get("provider_fallbacks", {}).items()},
            vendor_prefixes={k.lower(): v.lower()
                             for k, v in doc.get("vendor_prefixes", {}).items()},
        )

    # ------------------------------------------------------------------ resolution
    def resolve(self, provider: str | None, model: str | None) -> ModelPrice | None:
        """The price of ``model`` as sold by ``provider``; None when no entry matches."""
        key = (provider, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._resolve(provider, model) if model else None
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _resolve(self, provider: str | None, model: str) -> ModelPrice | None:
        own = (provider or "").lower()
        chain = [own, *self.provider_fallbacks.get(own, [])]
        for hint, name in candidates(model, self.vendor_prefixes):
            for p in ([hint] if hint else chain):
                price = self.models.get(p, {}).get(name)
                if price is not None:
                    return price
        # Last resort: a name that only one provider sells (an unknown gateway serving gpt-4o).
        index = self._global_index()
        for _hint, name in candidates(model, self.vendor_prefixes):
            price = index.get(name)
            if price is not None:
                return price
        return None

    def _global_index(self) -> dict[str, ModelPrice | None]:
        if self._global is None:
            index: dict[str, ModelPrice | None] = {}
            ambiguous: set[str] = set()
            for table in self.models.values():
                for name, price in table.items():
                    other = index.get(name)
                    if other is not None and _rates_differ(other, price):
                        ambiguous.add(name)
                    index.setdefault(name, price)
            for name in ambiguous:
                index[name] = None
            self._global = index
        return self._global

    # ------------------------------------------------------------------ arithmetic
    def cost(self, *, provider: str | None, model: str | None, operation: str | None,
             input_tokens: int | None, output_tokens: int | None,
             cached_input_tokens: int | None, cache_write_tokens: int | None,
             reasoning_tokens: int | None, at: int | _dt.datetime | None = None
             ) -> Cost | None:
        """The cost of one exchange; None when tokens were used by a model with no price.

        ``input_tokens`` includes cache reads and writes (OpenTelemetry); ``output_tokens``
        includes reasoning tokens. Reasoning is shown as its own component, at the table's
        ``reasoning`` rate when it has one and at the output rate otherwise, so the components
        always add up to ``cost_usd``. An exchange with no tokens at all (an error, a model
        listing, usage missing) costs 0, and so does a free operation (token counting).
        ``at`` is when the exchange happened (a record's ``ts``: integer microseconds UTC, or a
        datetime); it picks a model's time-window prices (DeepSeek's peak hours). None: the
        standard prices.
        """
        if operation in FREE_OPERATIONS or not (input_tokens or output_tokens
                                                or cached_input_tokens or cache_write_tokens):
            return Cost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, self.version)
        price = self.resolve(provider, model)
        if price is None:
            return None
        return compute_cost(price, self.version, input_tokens or 0, output_tokens or 0,
                            cached_input_tokens or 0, cache_write_tokens or 0,
                            reasoning_tokens or 0, at=None if at is None else to_micros(at))

    def model_names(self) -> list[tuple[str, str]]:
        """(provider, canonical model) pairs in the table, for listings."""
        return sorted({(p.provider, p.model) for t in self.models.values() for p in t.values()})


def compute_cost(price: ModelPrice, version: str, inp: int, out: int, cached: int, write: int,
                 reasoning: int, *, at: int | None = None) -> Cost:
    """The arithmetic, in one place (``llm_proxy.pricing.reprice`` vectorises the same steps).

    ``at``: microseconds since the epoch (UTC) of the exchange, for time-window prices.
    """
    r_in, r_cached, r_write, r_out, r_reason, r_request = price.rates(inp, at)
    uncached = inp - cached - write
    uncached = max(uncached, 0)
    reasoning = min(reasoning, out)
    c_in = uncached * r_in / _PER_TOKEN
    c_cached = cached * r_cached / _PER_TOKEN
    c_write = write * r_write / _PER_TOKEN
    c_out = (out - reasoning) * r_out / _PER_TOKEN
    c_reason = reasoning * r_reason / _PER_TOKEN
    total = c_in + c_cached + c_write + c_out + c_reason + r_request
    return Cost(total, c_in, c_cached, c_write, c_out, c_reason, r_request, version)


def _rates_differ(a: ModelPrice, b: ModelPrice) -> bool:
    def signature(p: ModelPrice) -> tuple[Any, ...]:
        return (p.input, p.output, p.cached_input, p.cache_write, p.reasoning, p.request,
                tuple(w.signature() for w in p.time_windows))
    return signature(a) != signature(b)


@lru_cache(maxsize=1)
def _builtin_document() -> dict[str, Any]:
    text = resources.files("llm_proxy.pricing").joinpath("data/prices.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    _validate(doc, "built-in price table")
    return doc


def _model_price(provider: str, name: str, spec: Mapping[str, Any]) -> ModelPrice:
    long_spec = spec.get("long_context")
    long_price = None
    if long_spec:
        long_price = _model_price(provider, name, {"input": spec["input"],
                                                   "output": spec["output"], **long_spec})
    return ModelPrice(
        provider=provider, model=name,
        input=float(spec["input"]), output=float(spec["output"]),
        cached_input=_opt_float(spec.get("cached_input")),
        cache_write=_opt_float(spec.get("cache_write")),
        reasoning=_opt_float(spec.get("reasoning")),
        request=float(spec.get("request", 0.0)),
        since=None if spec.get("since") is None else str(spec["since"]),
        long_context_threshold=spec.get("long_context_threshold"),
        long_context=long_price,
        time_windows=tuple(_time_window(provider, name, spec, w)
                           for w in spec.get("time_windows", ())),
    )


def _time_window(provider: str, name: str, spec: Mapping[str, Any],
                 window: Mapping[str, Any]) -> TimeWindow:
    """A ``[[models.P.M.time_windows]]`` table; like long_context it inherits input/output only."""
    hours = window["hours_utc"]
    spans = tuple(_span(h) for h in ([hours] if isinstance(hours, str) else hours))
    days = window.get("weekdays")
    prices = {k: v for k, v in window.items() if k in PRICE_FIELDS}
    return TimeWindow(
        spans=spans,
        weekdays=None if days is None else frozenset(WEEKDAYS.index(d.lower()) for d in days),
        except_days=frozenset(_epoch_day(d) for d in window.get("except_dates", ())),
        price=_model_price(provider, name, {"input": spec["input"], "output": spec["output"],
                                            **prices}),
    )


def _span(text: str) -> tuple[int, int]:
    m = _HOURS.match(text)
    if m is None:
        raise ValueError(text)
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    return ((h1 * 60 + m1) * 60_000_000, (h2 * 60 + m2) * 60_000_000)


def _epoch_day(value: str | _dt.date) -> int:
    day = value if isinstance(value, _dt.date) else _dt.date.fromisoformat(value)
    return (day - _dt.date(1970, 1, 1)).days


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _merge(base: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """User entries override built-in ones field by field; new providers and models are added."""
    merged: dict[str, Any] = {k: v for k, v in base.items() if k != "models"}
    merged["provider_fallbacks"] = {**base.get("provider_fallbacks", {}),
                                    **user.get("provider_fallbacks", {})}
    merged["vendor_prefixes"] = {**base.get("vendor_prefixes", {}),
                                 **user.get("vendor_prefixes", {})}
    models: dict[str, dict[str, Any]] = {
        p.lower(): {m.lower(): dict(spec) for m, spec in entries.items()}
        for p, entries in base.get("models", {}).items()}
    for provider, entries in user.get("models", {}).items():
        table = models.setdefault(provider.lower(), {})
        for name, spec in entries.items():
            current = table.setdefault(name.lower(), {})
            aliases = [*current.get("aliases", []), *spec.get("aliases", [])]
            current.update(spec)
            if aliases:
                current["aliases"] = aliases
    merged["models"] = models
    return merged


def _validate(doc: Mapping[str, Any], source: str) -> None:
    """Raise ``ConfigError`` naming the source and the first bad key."""
    for key in doc:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r} (use {', '.join(sorted(_TOP_KEYS))})")
    if "version" in doc and not isinstance(doc["version"], str):
        raise ConfigError(f"{source}: 'version' must be a string such as \"2026-11-01\"")
    for table in ("provider_fallbacks", "vendor_prefixes"):
        value = doc.get(table, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {table!r} must be a table")
        for k, v in value.items():
            ok = isinstance(v, str) if table == "vendor_prefixes" else (
                isinstance(v, list) and all(isinstance(x, str) for x in v))
            if not ok:
                raise ConfigError(f"{source}: {table}.{k} has a bad value {v!r}")
    models = doc.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{source}: 'models' must be tables [models.PROVIDER.\"MODEL\"]")
    for provider, entries in models.items():
        if not isinstance(entries, dict):
            raise ConfigError(f"{source}: models.{provider} must be a table of models")
        for name, spec in entries.items():
            _validate_model(spec, f"{source}: models.{provider}.{name!r}", nested=False)


def _validate_model(spec: Any, where: str, *, nested: bool) -> None:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a table such as {{input = 2.5, output = 10.0}}")
    allowed = frozenset(PRICE_FIELDS) if nested else _MODEL_KEYS
    for key, value in spec.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (use {', '.join(sorted(allowed))})")
        if key in PRICE_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{where}: {key} must be a number >= 0 (USD per million "
                                  f"tokens{', per request' if key == 'request' else ''}), "
                                  f"got {value!r}")
        elif key == "aliases":
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                raise ConfigError(f"{where}: aliases must be a list of model names")
        elif key == "long_context_threshold":
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{where}: long_context_threshold must be a positive integer")
        elif key == "long_context":
            _validate_model(value, f"{where}.long_context", nested=True)
        elif key == "time_windows":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}: time_windows must be tables "
                                  "[[models.PROVIDER.\"MODEL\".time_windows]]")
            for i, window in enumerate(value):
                _validate_window(window, f"{where}.time_windows[{i}]")
        elif key in ("since", "note") and not isinstance(value, (str, _dt.date)):
            raise ConfigError(f"{where}: {key} must be a string")
    if ("long_context" in spec) != ("long_context_threshold" in spec):
        raise ConfigError(f"{where}: long_context and long_context_threshold go together")
    if "long_context" in spec and "time_windows" in spec:
        raise ConfigError(f"{where}: long_context and time_windows cannot be combined")


def _validate_window(window: Any, where: str) -> None:
    if not isinstance(window, dict):
        raise ConfigError(f"{where} must be a table such as "
                          "{hours_utc = [\"01:00-04:00\"], input = 0.3, output = 1.2}")
    for key, value in window.items():
        if key not in _WINDOW_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} "
                              f"(use {', '.join(sorted(_WINDOW_KEYS))})")
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        if key in PRICE_FIELDS and bad:
            raise ConfigError(f"{where}: {key} must be a number >= 0, got {value!r}")
    hours = window.get("hours_utc")
    spans = [hours] if isinstance(hours, str) else hours
    if not isinstance(spans, list) or not spans or not all(
            isinstance(h, str) and _valid_span(h) for h in spans):
        raise ConfigError(f"{where}: hours_utc must be \"HH:MM-HH:MM\" (UTC; may wrap past "
                          f"midnight) or a list of them, got {hours!r}")
    days = window.get("weekdays")
    if days is not None and (not isinstance(days, list) or not days or not all(
            isinstance(d, str) and d.lower() in WEEKDAYS for d in days)):
        raise ConfigError(f"{where}: weekdays must be a list of {', '.join(WEEKDAYS)}, "
                          f"got {days!r}")
    dates = window.get("except_dates", [])
    if not isinstance(dates, list) or not all(_valid_date(d) for d in dates):
        raise ConfigError(f"{where}: except_dates must be a list of dates (YYYY-MM-DD), "
                          f"got {dates!r}")


def _valid_span(text: str) -> bool:
    m = _HOURS.match(text)
    if m is None:
        return False
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    return h1 < 24 and m1 < 60 and m2 < 60 and (h2 < 24 or (h2, m2) == (24, 0))


def _valid_date(value: Any) -> bool:
    if isinstance(value, _dt.datetime):
        return False
    if isinstance(value, _dt.date):
        return True
    try:
        _dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True
