"""One export day of the synthetic project, as the exact JSONL bytes the Export API returns.

Generation is columnar: numpy draws the day's events as columns (user, event,
time, item...), and pyarrow's string kernels join pre-serialised JSON fragments
into lines, so no Python code runs per event. The result is written straight from
the Arrow buffer. Each line is canonical orjson output (``orjson.dumps(orjson.loads(line))``
gives it back byte for byte), so a server that parses and re-serialises records
for filtering produces the same bytes as the unfiltered file.

The hard cases real exports contain, per day with events, each at least once
(``max(1, round(rate * events))``), on distinct events:

====================  ==========  =====================================================
name                  rate        what
====================  ==========  =====================================================
no_insert_id          0.2%        the event has no ``$insert_id``
duplicate             0.3%        a second copy of an event, same (event, distinct_id,
                                  time, ``$insert_id``), later ``mp_processing_time_ms``
shared_insert_id      0.1%        an event reuses another, different event's ``$insert_id``
case_variant_key      0.2%        ``"Plan"`` next to ``"plan"`` (keys differing by case)
unicode               1%          a ``note`` with emoji, CJK and right-to-left text
long_string           0.002%      a ``debug_payload`` string longer than 10 KB
numeric_string        0.5%        ``price`` sent as a string, e.g. ``"19.99"``
midnight              0.05%       an event at 00:00:00 of the export day
last_second           0.05%       an event at 23:59:59 of the export day
====================  ==========  =====================================================

"Export day" is the UTC day for modern projects and the project-timezone day for
legacy ones (contract §3.5); either way ``time`` = the day's midnight read as UTC
plus the second of the day, since a legacy ``time`` is shifted by the UTC offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from mixpanel_data.emulator.population import GEO, Population, day_offset_seconds

if TYPE_CHECKING:
    pass

__all__ = [
    "EVENT_NAMES",
    "HARD_CASE_RATES",
    "LONG_STRING_LENGTH",
    "count_hard_cases",
    "write_export_day",
]

HARD_CASE_RATES: Final[dict[str, float]] = {
    "no_insert_id": 0.002,
    "duplicate": 0.003,
    "shared_insert_id": 0.001,
    "case_variant_key": 0.002,
    "unicode": 0.01,
    "long_string": 0.00002,
    "numeric_string": 0.005,
    "midnight": 0.0005,
    "last_second": 0.0005,
}
LONG_STRING_LENGTH: Final = 12_288
SECONDS_PER_DAY: Final = 86_400
CHUNK_EVENTS: Final = 250_000  # rows joined per Arrow call (keeps offsets well under 2 GB)

# Event types. Every session starts with Login (Sign Up on the signup day, Page View
# for anonymous visitors) and follows one journey template; longer sessions browse.
SIGN_UP, LOGIN, VIEW_ITEM, SEARCH, ADD_TO_CART, PURCHASE, PAGE_VIEW, SHARE_ITEM = range(8)
EVENT_NAMES: Final = (
    "Sign Up",
    "Login",
    "View Item",
    "Search",
    "Add To Cart",
    "Purchase",
    "Page View",
    "Share Item",
)
_V, _S, _A, _P, _G, _H = VIEW_ITEM, SEARCH, ADD_TO_CART, PURCHASE, PAGE_VIEW, SHARE_ITEM
JOURNEYS: Final = (  # (weight, steps after the first event)
    (30, (_V, _V, _S, _V, _A, _V, _G, _V, _G)),
    (20, (_S, _V, _S, _V, _A, _P, _H, _V, _G)),
    (15, (_V, _A, _V, _A, _P, _G, _V, _G, _V)),
    (25, (_G, _V, _G, _S, _V, _G, _V, _G, _V)),
    (10, (_S, _V, _A, _P, _V, _H, _G, _V, _G)),
)
SESSION_BREAK: Final = 0.2  # chance that the next event starts a new session

CATEGORIES: Final = ("Shoes", "Outdoor", "Electronics", "Books", "Kitchen", "Toys", "Garden")
ADJECTIVES: Final = ("Classic", "Ultra", "Eco", "Pro", "Compact", "Deluxe", "Trail", "Smart")
NOUNS: Final = ("Runner", "Backpack", "Headphones", "Novel", "Kettle", "Robot", "Lamp", "Tent")
CENT_ENDINGS: Final = (99, 49, 95, 29, 79)  # never a whole number at quantity 1..5
SEARCH_TERMS: Final = (
    "running shoes", "tent 2 person", "noise cancelling headphones", "kettle", "gift ideas",
    "lego", "garden lamp", "backpack waterproof", "sci-fi novel", "sale", "usb-c cable",
    "yoga mat", "coffee grinder", "kids toys", "smart watch", "café crème", "zapatos",
)  # fmt: skip
PAGES: Final = ("Home", "Pricing", "About", "Help Center", "Blog", "Deals", "Account", "Orders")
UNICODE_NOTES: Final = (
    "Great product 👍🔥 would buy again",
    "非常好的产品，物流很快",
    "素晴らしい商品です🎉",
    "מוצר מצוין, ממליץ בחום",
    "منتج رائع جدا 🌟",
    "Ünïcödé ✓ — “quoted” ‘text’ 🚀",
    "Очень удобно 😀",
    "👨‍👩‍👧‍👦 family pack",
)
SITE: Final = "https://shop.example.com"


def _fragment(props: dict[str, Any]) -> str:
    """``{"a":1,"b":2}`` -> ``,"a":1,"b":2`` (canonical orjson)."""
    return "," + orjson.dumps(props).decode()[1:-1]


def _price_text(cents: int) -> str:
    """The canonical JSON text of ``cents / 100`` (what orjson prints for that float)."""
    return orjson.dumps(cents / 100).decode()


class _Catalog:
    """Items, searches, pages: the pre-serialised per-event fragments."""

    ITEMS: Final = 240

    def __init__(self, seed: int) -> None:
        import numpy as np
        import pyarrow as pa

        rng = np.random.default_rng([seed, 0xCA7A])
        self.item_cents: list[int] = []
        self.item_frags: list[str] = []
        for i in range(self.ITEMS):
            cat = CATEGORIES[i % len(CATEGORIES)]
            name = f"{ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]} {NOUNS[i % len(NOUNS)]}"
            cents = int(rng.integers(4, 300)) * 100 + CENT_ENDINGS[i % len(CENT_ENDINGS)]
            self.item_cents.append(cents)
            extra = [c for c in CATEGORIES if c != cat][i % 5 : i % 5 + 1 + i % 2]
            self.item_frags.append(
                _fragment(
                    {
                        "item_id": f"SKU-{1000 + i}",
                        "item_name": name,
                        "category": cat,
                        "categories": [cat, *extra],
                        "in_stock": bool(rng.random() < 0.9),
                        "$current_url": f"{SITE}/p/sku-{1000 + i}",
                    }
                )
            )
        self.price_texts = [_price_text(c) for c in self.item_cents]
        self.search_frags = [
            _fragment(
                {
                    "search_term": term,
                    "search_type": "typed" if j % 3 else "suggested",
                    "$current_url": f"{SITE}/search?q={term.replace(' ', '+')}",
                }
            )
            for j, term in enumerate(SEARCH_TERMS)
        ]
        self.page_frags = [
            _fragment(
                {
                    "page": page,
                    "page_title": f"{page} | Example Shop",
                    "$current_url": f"{SITE}/{page.lower().replace(' ', '-')}",
                    "$referrer": f"{SITE}/" if j else "$direct",
                }
            )
            for j, page in enumerate(PAGES)
        ]
        self.signup_frags = [
            _fragment(
                {
                    "signup_method": method,
                    "referral": j % 2 == 1,
                    "accepted_terms": True,
                    "$current_url": f"{SITE}/signup",
                }
            )
            for j, method in enumerate(("email", "google", "apple", "github"))
        ]
        self.login_frags = [
            _fragment(
                {
                    "login_method": method,
                    "remember_me": j % 2 == 0,
                    "$current_url": f"{SITE}/login",
                }
            )
            for j, method in enumerate(("password", "google", "apple", "magic_link"))
        ]
        self.share_frags = [
            _fragment({"channel": ch}) for ch in ("email", "whatsapp", "x", "copy_link")
        ]
        self.payment_frags = [
            _fragment({"payment_method": m, "coupon_used": j == 2})
            for j, m in enumerate(("card", "paypal", "card", "apple_pay", "klarna"))
        ]
        # cents 0..99 as the tail of a canonical float text: 5 -> "05", 10 -> "1", 0 -> "0"
        cent_texts = [f"{c:02d}".rstrip("0") or "0" for c in range(100)]
        prefixes = [
            '{"event":' + orjson.dumps(name).decode() + ',"properties":{"time":'
            for name in EVENT_NAMES
        ]
        currencies = [f',"currency":"{g[3]}"}}' for g in GEO]  # closes the "cart" object
        # As Arrow arrays, ready for pyarrow.compute.take.
        s = pa.large_string()  # large_string: pyarrow's take is ~3x faster on it than on string
        self.item_frag_array = pa.array(self.item_frags, type=s)
        self.search_frag_array = pa.array(self.search_frags, type=s)
        self.page_frag_array = pa.array(self.page_frags, type=s)
        self.signup_frag_array = pa.array(self.signup_frags, type=s)
        self.login_frag_array = pa.array(self.login_frags, type=s)
        self.share_frag_array = pa.array(self.share_frags, type=s)
        self.payment_frag_array = pa.array(self.payment_frags, type=s)
        self.cent_array = pa.array(cent_texts, type=s)
        self.event_prefixes = pa.array(prefixes, type=s)
        self.currency_array = pa.array(currencies, type=s)
        self.item_cent_values = np.asarray(self.item_cents, dtype=np.int64)


def write_export_day(
    path: Path,
    *,
    population: Population,
    seed: int,
    day: date,
    day_index: int,
    events_per_active_day: float,
    tz: Any,
    legacy_time_shift: bool,
) -> int:
    """Generate one export day into ``path`` (the caller renames it into place); return rows."""
    import numpy as np

    rng = np.random.default_rng([seed, day.toordinal(), 0xDA7])
    catalog = _catalog(seed)
    active_users = np.flatnonzero(population.active(day_index))
    if active_users.size == 0:
        path.write_bytes(b"")
        return 0

    # -- events per user-day and their order within the day ----------------------
    n_per_user = 1 + rng.poisson(max(events_per_active_day - 1.0, 0.0), active_users.size)
    n_per_user[population.bounced[active_users]] = 1  # bouncers' only day: the first event
    total = int(n_per_user.sum())
    user = np.repeat(active_users, n_per_user)
    starts = np.repeat(np.cumsum(n_per_user) - n_per_user, n_per_user)
    k = np.arange(total) - starts  # position within the user's day
    new_session = (k == 0) | (rng.random(total) < SESSION_BREAK)
    session = np.cumsum(new_session) - 1
    session_start = np.flatnonzero(new_session)
    step = np.arange(total) - session_start[session]
    weights = np.asarray([w for w, _ in JOURNEYS], dtype=np.float64)
    journey = rng.choice(len(JOURNEYS), session_start.size, p=weights / weights.sum())[session]
    table = np.asarray([steps for _, steps in JOURNEYS], dtype=np.int64)
    width = table.shape[1]
    tail = np.where(step % 2 == 0, VIEW_ITEM, PAGE_VIEW)
    etype = np.where(
        step == 0,
        LOGIN,
        np.where(step <= width, table[journey, np.minimum(step, width) - 1], tail),
    )
    cols = population.cols
    anonymous = cols.anonymous[user]
    etype = np.where(anonymous & (etype == LOGIN), PAGE_VIEW, etype)
    signs_up = (k == 0) & (cols.signup_day[user] == day_index) & ~anonymous
    etype = np.where(signs_up, SIGN_UP, etype)

    # -- times: first event from the user-day hash, then gaps ----------------------
    first = population.first_event_tod(day_index, active_users)
    gaps = np.where(
        new_session, 600 + rng.exponential(5400.0, total), 3 + rng.exponential(50.0, total)
    ).astype(np.int64)
    gaps[k == 0] = 0
    offset = np.cumsum(gaps)
    offset = offset - offset[starts]  # seconds after the user's first event
    first_all = np.repeat(first, n_per_user)
    # A day that would run past midnight is compressed to fit, so volume stays as asked.
    span = np.repeat(offset[np.cumsum(n_per_user) - 1], n_per_user)
    # ...ending at a random point of the rest of the day, not all at 23:59:59.
    slack = np.repeat(rng.random(active_users.size), n_per_user) * 0.5
    room = ((SECONDS_PER_DAY - 1 - first_all) * (1.0 - slack)).astype(np.int64)
    scale = np.where(span > room, room / np.maximum(span, 1), 1.0)
    tod = first_all + np.floor(offset * scale).astype(np.int64)
    n = int(user.size)

    # -- per-event values -----------------------------------------------------------
    item = rng.integers(0, catalog.ITEMS, n)
    choice = rng.integers(0, 1 << 30, n)
    quantity = 1 + rng.binomial(4, 0.2, n)
    insert_raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    has_insert = np.ones(n, dtype=bool)
    extras = np.full(n, "", dtype=object)
    price_quoted = np.zeros(n, dtype=bool)

    # -- hard cases on distinct events (see the module docstring) -------------------
    counts = {name: max(1, round(rate * n)) for name, rate in HARD_CASE_RATES.items()}
    anonymous = cols.anonymous[user]
    priced = np.isin(etype, (VIEW_ITEM, ADD_TO_CART, PURCHASE))
    only = {"numeric_string": priced, "case_variant_key": ~anonymous}  # needs price / plan
    free = etype != SIGN_UP  # keep Sign Up times equal to the profile's $created
    picked = rng.permutation(n)
    chosen: dict[str, Any] = {}
    for name in HARD_CASE_RATES:
        ok = free[picked]
        if name in only:
            ok &= only[name][picked]
        chosen[name] = picked[ok][: counts[name]]
        free[chosen[name]] = False
    has_insert[chosen["no_insert_id"]] = False
    donors = np.flatnonzero(free)
    for r in chosen["shared_insert_id"]:
        others = donors[etype[donors] != etype[r]]
        if others.size:
            insert_raw[r] = insert_raw[others[int(rng.integers(others.size))]]
    price_quoted[chosen["numeric_string"]] = True
    tod[chosen["midnight"]] = 0
    tod[chosen["last_second"]] = SECONDS_PER_DAY - 1
    for r in chosen["case_variant_key"]:
        extras[r] += _fragment({"Plan": population.plan_name(int(user[r])).title()})
    for j, r in enumerate(chosen["unicode"]):
        extras[r] += _fragment({"note": UNICODE_NOTES[(j + int(choice[r])) % len(UNICODE_NOTES)]})
    for r in chosen["long_string"]:
        blob = ("lorem ipsum dolor sit amet ⚡ " * (LONG_STRING_LENGTH // 28 + 1))[
            :LONG_STRING_LENGTH
        ]
        extras[r] += _fragment({"debug_payload": blob})

    # -- times in the wire format (contract §3.5) ------------------------------------
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    time = midnight + tod
    shift = day_offset_seconds(tz, day) if legacy_time_shift else 0
    api_ms = (time - shift) * 1000 + rng.integers(0, 1000, n)
    delay = rng.integers(40, 4000, n)
    late = rng.random(n) < 0.01  # offline mobile events arrive hours later
    delay = np.where(late, delay + rng.integers(60_000, 5 * 86_400_000, n), delay)
    processing = api_ms + delay

    # -- duplicates: copies appended, so a stable time sort puts each after its original;
    # a copy differs only by a later mp_processing_time_ms.
    dup = chosen["duplicate"]
    rows = np.concatenate([np.arange(n), dup])
    processing = processing[rows]
    processing[n:] += rng.integers(1_000, 3_600_000, dup.size)
    order = np.lexsort((np.arange(rows.size), tod[rows]))
    rows = rows[order]
    processing = processing[order]
    user, etype, time, api_ms, item, choice, quantity = (
        a[rows] for a in (user, etype, time, api_ms, item, choice, quantity)
    )
    insert_raw, has_insert, extras, price_quoted = (
        a[rows] for a in (insert_raw, has_insert, extras, price_quoted)
    )
    n_all = int(rows.size)

    with path.open("wb") as out:
        for lo in range(0, n_all, CHUNK_EVENTS):
            hi = min(lo + CHUNK_EVENTS, n_all)
            out.write(
                _lines(
                    catalog,
                    population,
                    sl=slice(lo, hi),
                    user=user,
                    etype=etype,
                    time=time,
                    api_ms=api_ms,
                    processing=processing,
                    item=item,
                    choice=choice,
                    quantity=quantity,
                    insert_raw=insert_raw,
                    has_insert=has_insert,
                    extras=extras,
                    price_quoted=price_quoted,
                )
            )
    return n_all


_CATALOGS: dict[int, _Catalog] = {}


def _catalog(seed: int) -> _Catalog:
    if seed not in _CATALOGS:
        _CATALOGS[seed] = _Catalog(seed)
    return _CATALOGS[seed]


def _lines(catalog: _Catalog, population: Population, *, sl: slice, **cols: Any) -> Any:
    """Join the fragments of rows ``sl`` into JSONL bytes (a buffer holding the lines).

    The big pieces (per-user fragment, numbers) are built full-length in row order;
    only the small event-type-specific piece is built per type and put back in order.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    user = cols["user"][sl]
    etype = cols["etype"][sl]
    n = int(user.size)

    def text(values: Any) -> Any:
        return pc.cast(pa.array(values), pa.large_string())

    def lit(value: str) -> Any:
        return pa.scalar(value, pa.large_string())

    pieces: list[Any] = []
    positions: list[Any] = []
    for e in range(len(EVENT_NAMES)):
        idx = np.flatnonzero(etype == e)
        if idx.size == 0:
            continue
        parts = _specific(catalog, population, e, user[idx], cols, sl, idx)
        pieces.append(pc.binary_join_element_wise(*parts, lit("")) if len(parts) > 1 else parts[0])
        positions.append(idx)
    inverse = np.empty(n, dtype=np.int64)
    inverse[np.concatenate(positions)] = np.arange(n)
    specific = pc.take(pa.concat_arrays(pieces), pa.array(inverse))

    lines = pc.binary_join_element_wise(
        pc.take(catalog.event_prefixes, pa.array(etype)),
        text(cols["time"][sl]),
        pc.take(population.event_fragment_array(), pa.array(user)),
        _insert_ids(cols["insert_raw"][sl], cols["has_insert"][sl]),
        lit(',"$mp_api_endpoint":"api.mixpanel.com","$mp_api_timestamp_ms":'),
        text(cols["api_ms"][sl]),
        lit(',"mp_processing_time_ms":'),
        text(cols["processing"][sl]),
        specific,
        pa.array(cols["extras"][sl], type=pa.large_string()),
        lit("}}\n"),
        lit(""),
    )
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    begin, end = int(offsets[lines.offset]), int(offsets[lines.offset + n])
    return memoryview(lines.buffers()[2])[begin:end]


def _specific(
    catalog: _Catalog,
    population: Population,
    e: int,
    u: Any,
    cols: dict[str, Any],
    sl: slice,
    idx: Any,
) -> list[Any]:
    """The event-type-specific pieces of a line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    item = cols["item"][sl][idx]
    choice = cols["choice"][sl][idx]

    def pick(frags: Any) -> Any:
        return pc.take(frags, pa.array(choice % len(frags)))

    def text(values: Any) -> Any:
        return pc.cast(pa.array(values), pa.large_string())

    def lit(value: str) -> Any:
        return pa.scalar(value, pa.large_string())

    quoted = cols["price_quoted"][sl][idx]
    quantity = cols["quantity"][sl][idx]
    currency = pc.take(catalog.currency_array, pa.array(population.cols.geo[u]))

    def price(cents: Any) -> Any:
        dollars = text(cents // 100)
        tail = pc.take(catalog.cent_array, pa.array(cents % 100))
        number = pc.binary_join_element_wise(dollars, lit("."), tail, lit(""))
        if not quoted.any():
            return number
        wrapped = pc.binary_join_element_wise(lit('"'), number, lit('"'), lit(""))
        return pc.if_else(pa.array(quoted), wrapped, number)

    item_frag = pc.take(catalog.item_frag_array, pa.array(item))
    item_cents = catalog.item_cent_values[item]
    if e == VIEW_ITEM:
        return [item_frag, lit(',"price":'), price(item_cents)]
    if e == ADD_TO_CART:
        return [
            item_frag,
            lit(',"price":'),
            price(item_cents),
            lit(',"quantity":'),
            text(quantity),
            lit(',"cart":{"items":'),
            text(quantity + choice % 3),
            currency,
        ]
    if e == PURCHASE:
        return [
            item_frag,
            lit(',"price":'),
            price(item_cents * quantity),
            lit(',"quantity":'),
            text(quantity),
            lit(',"cart":{"items":'),
            text(quantity),
            currency,
            lit(',"order_id":"ORD-'),
            text(100_000 + choice % 900_000),
            lit('"'),
            pick(catalog.payment_frag_array),
        ]
    if e == SEARCH:
        return [pick(catalog.search_frag_array), lit(',"results_count":'), text(choice % 120)]
    if e == SIGN_UP:
        return [pick(catalog.signup_frag_array)]
    if e == LOGIN:
        return [pick(catalog.login_frag_array)]
    if e == PAGE_VIEW:
        return [pick(catalog.page_frag_array)]
    return [item_frag, pick(catalog.share_frag_array)]


_HEX: Final = b"0123456789abcdef"
_INSERT_PREFIX: Final = b',"$insert_id":"'


def _insert_ids(raw: Any, present: Any) -> Any:
    """``,"$insert_id":"<uuid4>"`` per row ('' where absent), built as one byte matrix."""
    import numpy as np
    import pyarrow as pa

    b = raw.copy()
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    hexchars = np.frombuffer(_HEX, dtype=np.uint8)
    h = np.empty((b.shape[0], 32), dtype=np.uint8)
    h[:, 0::2] = hexchars[b >> 4]
    h[:, 1::2] = hexchars[b & 15]
    width = len(_INSERT_PREFIX) + 37
    m = np.empty((b.shape[0], width), dtype=np.uint8)
    m[:, : len(_INSERT_PREFIX)] = np.frombuffer(_INSERT_PREFIX, dtype=np.uint8)
    p = len(_INSERT_PREFIX)
    dash = ord("-")
    for src, dst in ((0, 0), (8, 9), (12, 14), (16, 19), (20, 24)):
        length = {0: 8, 8: 4, 12: 4, 16: 4, 20: 12}[src]
        m[:, p + dst : p + dst + length] = h[:, src : src + length]
    for d in (8, 13, 18, 23):
        m[:, p + d] = dash
    m[:, -1] = ord('"')
    lengths = np.where(present, width, 0).astype(np.int64)
    offsets = np.zeros(b.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = m[present].tobytes()
    return pa.LargeStringArray.from_buffers(
        b.shape[0], pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)
    )


def iter_lines(path: Path) -> Iterator[bytes]:
    """The lines of an export day file (with their ``\\n``)."""
    with path.open("rb") as f:
        yield from f


def count_hard_cases(path: Path) -> dict[str, int]:
    """Count each hard case in an export day file, by reading it independently of generation."""
    counts = dict.fromkeys(HARD_CASE_RATES, 0)
    counts["events"] = 0
    seen: dict[tuple[Any, ...], int] = {}
    insert_owner: dict[str, tuple[Any, ...]] = {}
    shared: set[str] = set()
    for line in iter_lines(path):
        record = orjson.loads(line)
        props = record["properties"]
        counts["events"] += 1
        insert_id = props.get("$insert_id")
        key = (record["event"], props["distinct_id"], props["time"], insert_id)
        if insert_id is None:
            counts["no_insert_id"] += 1
        elif key in seen:
            if props["mp_processing_time_ms"] > seen[key]:
                counts["duplicate"] += 1
        else:
            owner = insert_owner.setdefault(insert_id, key)
            if owner != key:
                shared.add(insert_id)
        seen.setdefault(key, props["mp_processing_time_ms"])
        lowered = [k.lower() for k in props]
        if len(set(lowered)) != len(lowered):
            counts["case_variant_key"] += 1
        if any(isinstance(v, str) and len(v) > 10_000 for v in props.values()):
            counts["long_string"] += 1
        if "note" in props:
            counts["unicode"] += 1
        if isinstance(props.get("price"), str):
            counts["numeric_string"] += 1
        second = props["time"] % SECONDS_PER_DAY
        counts["midnight"] += second == 0
        counts["last_second"] += second == SECONDS_PER_DAY - 1
    counts["shared_insert_id"] = len(shared)
    return counts
