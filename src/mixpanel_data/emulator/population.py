"""The synthetic project's users: who they are, when they signed up, when they are active.

Every per-user fact derives from ``(seed, user index)`` only, and every per-user-day
fact (active or not, first event time) from a counter hash of ``(seed, user, day)``,
so any day can be generated alone, in any order, and agree with the profiles.

About 8% of users are anonymous visitors (``$device:<uuid>`` distinct ids, no
profile, no ``Sign Up``), so engage's ``include_all_users`` matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    IntArray = npt.NDArray[np.int64]
    FloatArray = npt.NDArray[np.float64]
    BoolArray = npt.NDArray[np.bool_]

__all__ = ["ANONYMOUS_RATE", "BOUNCE_RATE", "Population", "day_offset_seconds", "hash_uniform"]

ANONYMOUS_RATE: Final = 0.08
PRE_RANGE_SIGNUP_RATE: Final = 0.35  # signed up in the 90 days before the data starts
PRE_RANGE_DAYS: Final = 90
BOUNCE_RATE: Final = 0.2

# Activity by local hour of day (a weekday web shop: quiet nights, busy evenings).
HOURLY_WEIGHTS: Final = (
    2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 9, 8, 8, 8, 8, 9, 10, 11, 10, 8, 5, 3,
)  # fmt: skip

FIRST_NAMES: Final = (
    "Ana", "Ben", "Chloé", "Dmitri", "Elif", "Farah", "Gabriel", "Hana", "Ivan", "Jia",
    "Kwame", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rafael", "Sofia", "Tomás",
    "Uma", "Viktor", "Wen", "Xavier", "Yara", "Zoë",
)  # fmt: skip
LAST_NAMES: Final = (
    "Andersen", "Brown", "Chen", "Dubois", "Eriksen", "Fernández", "García", "Haddad",
    "Ito", "Jensen", "Kim", "López", "Müller", "Nakamura", "Okafor", "Patel", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Volkov", "Wang", "Yilmaz", "Zhang",
)  # fmt: skip
COMPANIES: Final = (
    "Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
    "Soylent", "Tyrell", "Cyberdyne", "", "",
)  # fmt: skip
# (city, region, country code, currency, weight)
GEO: Final = (
    ("San Francisco", "California", "US", "USD", 9),
    ("New York", "New York", "US", "USD", 9),
    ("Austin", "Texas", "US", "USD", 5),
    ("Seattle", "Washington", "US", "USD", 4),
    ("Chicago", "Illinois", "US", "USD", 4),
    ("Toronto", "Ontario", "CA", "CAD", 4),
    ("London", "England", "GB", "GBP", 6),
    ("Berlin", "Berlin", "DE", "EUR", 4),
    ("Zürich", "Zurich", "CH", "CHF", 2),
    ("Paris", "Île-de-France", "FR", "EUR", 4),
    ("Madrid", "Madrid", "ES", "EUR", 2),
    ("São Paulo", "São Paulo", "BR", "BRL", 4),
    ("Mexico City", "Mexico City", "MX", "MXN", 3),
    ("Bengaluru", "Karnataka", "IN", "INR", 5),
    ("Tokyo", "Tokyo", "JP", "JPY", 4),
    ("Seoul", "Seoul", "KR", "KRW", 2),
    ("Sydney", "New South Wales", "AU", "AUD", 3),
    ("Kraków", "Lesser Poland", "PL", "PLN", 1),
    ("Tel Aviv", "Tel Aviv District", "IL", "ILS", 1),
    ("Lagos", "Lagos", "NG", "NGN", 1),
)
PLANS: Final = (("free", 55), ("pro", 25), ("team", 12), ("enterprise", 5), ("trial", 3))
# (platform, mp_lib, lib version, weight)
PLATFORMS: Final = (("web", "web", "2.55.1", 60), ("iOS", "iphone", "4.3.0", 22),
                    ("Android", "android", "7.5.2", 18))  # fmt: skip
WEB_CLIENTS: Final = (
    ("Chrome", 124, "Mac OS X", 1440, 900),
    ("Chrome", 123, "Windows", 1920, 1080),
    ("Safari", 17.4, "Mac OS X", 1512, 982),
    ("Firefox", 125, "Windows", 1536, 864),
    ("Edge", 124, "Windows", 1920, 1080),
    ("Chrome", 124, "Linux", 2560, 1440),
)
IOS_MODELS: Final = (("iPhone15,2", "17.4.1", 852, 393), ("iPhone14,5", "17.3", 844, 390),
                     ("iPad13,1", "17.2", 1180, 820))  # fmt: skip
ANDROID_MODELS: Final = (("Pixel 8", "14", 915, 412), ("SM-S918B", "14", 915, 412),
                         ("moto g54", "13", 800, 360))  # fmt: skip
REFERRERS: Final = (
    ("$direct", "$direct", "", "", ""),
    ("https://www.google.com/", "www.google.com", "google", "cpc", "spring_sale"),
    ("https://www.google.com/", "www.google.com", "google", "organic", ""),
    ("https://www.facebook.com/", "www.facebook.com", "facebook", "social", "retargeting"),
    ("https://news.ycombinator.com/", "news.ycombinator.com", "", "", ""),
    ("https://www.bing.com/", "www.bing.com", "bing", "cpc", "brand"),
    ("https://t.co/", "t.co", "twitter", "social", "launch_week"),
)
SIGNUP_METHODS: Final = ("email", "google", "apple", "github")
TAGS: Final = ("beta", "vip", "newsletter", "churn-risk", "b2b", "mobile-first", "early-adopter")


def hash_uniform(seed: int, salt: int, a: Any, b: Any = 0) -> FloatArray:
    """Uniform [0, 1) numbers from a counter hash of (seed, salt, a, b), elementwise.

    A splitmix64 finaliser: the same inputs give the same numbers whatever else
    was generated before, which keeps days independent of generation order.
    """
    import numpy as np

    # 1-d arrays throughout: numpy warns on wrapping scalar arithmetic, not on arrays.
    a_arr, b_arr = np.broadcast_arrays(
        np.atleast_1d(np.asarray(a, dtype=np.int64)), np.atleast_1d(np.asarray(b, dtype=np.int64))
    )
    x = a_arr.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x = x ^ (b_arr.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
    x = x ^ np.uint64((seed * 0x165667B19E3779F9 + salt * 0x27D4EB2F165667C5) % 2**64)
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    result: FloatArray = (x >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
    return result


def day_offset_seconds(tz: Any, day: date) -> int:
    """The project timezone's UTC offset at noon on ``day``, in seconds."""
    offset = datetime(day.year, day.month, day.day, 12, tzinfo=tz).utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def _weights(values: tuple[Any, ...]) -> FloatArray:
    import numpy as np

    w = np.asarray([v[-1] for v in values], dtype=np.float64)
    result: FloatArray = w / w.sum()
    return result


@dataclass(frozen=True)
class _Columns:
    """Per-user attributes as numpy columns (index = user number)."""

    anonymous: BoolArray
    signup_day: IntArray  # day index relative to the first data day (negative: before)
    signup_tod: IntArray  # seconds into the export day of the first event on signup day
    engagement: FloatArray
    churn_age: FloatArray
    plan: IntArray
    geo: IntArray
    platform: IntArray
    client: IntArray
    referrer: IntArray


class Population:
    """The users of one synthetic project, derived from ``seed`` and ``users``.

    ``offset_hours`` shifts the daily activity curve so that peaks fall in the
    project's local afternoon whatever day semantics the export uses.
    """

    def __init__(self, *, seed: int, users: int, days: int, offset_hours: float) -> None:
        import numpy as np

        self.seed, self.users, self.days = seed, users, days
        rng = np.random.default_rng([seed, 0x5EED, users])
        anonymous = rng.random(users) < ANONYMOUS_RATE
        before = rng.random(users) < PRE_RANGE_SIGNUP_RATE
        signup_day = np.where(
            before,
            rng.integers(-PRE_RANGE_DAYS, 0, users),
            rng.integers(0, max(days, 1), users),
        ).astype(np.int64)
        # Bouncers sign up, do nothing else and never return: the funnel's first drop.
        bounced = rng.random(users) < BOUNCE_RATE
        self.bounced = bounced
        hourly = np.asarray(HOURLY_WEIGHTS, dtype=np.float64)
        shift = round(-offset_hours) % 24  # export hour h shows local hour h + offset
        self.hour_cdf = np.cumsum(np.roll(hourly / hourly.sum(), shift))
        self.hour_cdf[-1] = 1.0
        self.cols = _Columns(
            anonymous=anonymous,
            signup_day=signup_day,
            signup_tod=self.time_of_day(rng.random(users), rng.random(users)),
            engagement=rng.beta(3.0, 1.6, users),
            churn_age=np.where(bounced, 0.5, rng.exponential(70.0, users)),
            plan=rng.choice(len(PLANS), users, p=_weights(PLANS)),
            geo=rng.choice(len(GEO), users, p=_weights(GEO)),
            platform=rng.choice(len(PLATFORMS), users, p=_weights(PLATFORMS)),
            client=rng.integers(0, 3 * len(WEB_CLIENTS), users),
            referrer=rng.integers(0, len(REFERRERS), users),
        )
        ids = rng.integers(0, 256, size=(users, 32), dtype=np.uint8)
        self.distinct_ids = [_uuid(bytes(row[:16])) for row in ids]
        self.device_ids = [_uuid(bytes(row[16:])) for row in ids]
        for i in np.flatnonzero(anonymous):
            self.distinct_ids[i] = "$device:" + self.device_ids[i]
        self.extras = rng.random((users, 8))  # profile-only attributes
        self._fragments: list[str] | None = None
        self._fragment_array: Any = None

    # -- activity model -------------------------------------------------------

    def time_of_day(self, u_hour: FloatArray, u_second: FloatArray) -> IntArray:
        """Seconds into the export day, following the hourly activity curve."""
        import numpy as np

        hour = np.minimum(np.searchsorted(self.hour_cdf, u_hour, side="right"), 23)
        result: IntArray = (hour * 3600 + np.floor(u_second * 3600)).astype(np.int64)
        return result

    def activity_probability(self, day_index: int) -> FloatArray:
        """Chance that each user is active on a day (1 on the signup day, 0 after churn)."""
        import numpy as np

        c = self.cols
        age = (day_index - c.signup_day).astype(np.float64)
        decay = 0.4 + 0.6 * np.exp(-age / 12.0)
        p = np.where(age > c.churn_age, 0.0, c.engagement * decay)
        p = np.where(c.anonymous, p * 0.3, p)
        result: FloatArray = np.where(age == 0, 1.0, np.where(age < 0, 0.0, p))
        return result

    def active(self, day_index: int) -> BoolArray:
        """Which users are active on a day, by a hash of (seed, user, day)."""
        import numpy as np

        u = hash_uniform(self.seed, 1, np.arange(self.users), day_index)
        result: BoolArray = u < self.activity_probability(day_index)
        return result

    def first_event_tod(self, day_index: int | IntArray, users: IntArray) -> IntArray:
        """Seconds into the export day of each user's first event that day."""
        import numpy as np

        tod = self.time_of_day(
            hash_uniform(self.seed, 2, users, day_index),
            hash_uniform(self.seed, 3, users, day_index),
        )
        on_signup = self.cols.signup_day[users] == day_index
        result: IntArray = np.where(on_signup, self.cols.signup_tod[users], tod)
        return result

    def expected_active_user_days(self) -> float:
        """Sum of activity probabilities over the data range (to calibrate volume)."""
        return float(sum(self.activity_probability(d).sum() for d in range(self.days)))

    def last_active_day(self) -> IntArray:
        """Each user's last active day index up to the end of the data range."""
        import numpy as np

        last = self.cols.signup_day.copy()
        for d in range(-PRE_RANGE_DAYS, self.days):
            last = np.where(self.active(d), d, last)
        return last

    # -- serialised pieces ----------------------------------------------------

    def event_fragments(self) -> list[str]:
        """Per-user JSON fragment of the user-level event properties, starting with ``,``.

        Built once; the day generator takes from it by user index, so every event
        of a user carries the same device, location and acquisition properties.
        """
        if self._fragments is None:
            self._fragments = [self._fragment(i) for i in range(self.users)]
        return self._fragments

    def event_fragment_array(self) -> Any:
        """``event_fragments()`` as a pyarrow string array (built once)."""
        if self._fragment_array is None:
            import pyarrow as pa

            self._fragment_array = pa.array(self.event_fragments(), type=pa.large_string())
        return self._fragment_array

    def _fragment(self, i: int) -> str:
        c = self.cols
        city, region, country, _currency, _w = GEO[int(c.geo[i])]
        platform, lib, lib_version, _w2 = PLATFORMS[int(c.platform[i])]
        ref, _domain, source, medium, campaign = REFERRERS[int(c.referrer[i])]
        props: dict[str, Any] = {"distinct_id": self.distinct_ids[i]}
        client = int(c.client[i])
        if platform == "web":
            browser, version, os_name, width, height = WEB_CLIENTS[client % len(WEB_CLIENTS)]
            props.update(
                {
                    "$browser": browser,
                    "$browser_version": version,
                    "$os": os_name,
                    "$screen_height": height,
                    "$screen_width": width,
                }
            )
        else:
            models = IOS_MODELS if platform == "iOS" else ANDROID_MODELS
            model, os_version, height, width = models[client % len(models)]
            props.update(
                {
                    "$os": platform,
                    "$os_version": os_version,
                    "$model": model,
                    "$manufacturer": "Apple" if platform == "iOS" else "Google",
                    "$app_version_string": "3.14." + str(client % 7),
                    "$screen_height": height,
                    "$screen_width": width,
                    "$wifi": bool(client % 2),
                }
            )
        props.update(
            {
                "$city": city,
                "$region": region,
                "mp_country_code": country,
                "$device_id": self.device_ids[i],
                "mp_lib": lib,
                "$lib_version": lib_version,
                "$initial_referrer": ref,
            }
        )
        if source:
            props.update({"utm_source": source, "utm_medium": medium})
            if campaign:
                props["utm_campaign"] = campaign
        if not c.anonymous[i]:
            props["$user_id"] = self.distinct_ids[i]
            props["plan"] = PLANS[int(c.plan[i])][0]
        return "," + orjson.dumps(props).decode()[1:-1]

    def plan_name(self, i: int) -> str:
        return PLANS[int(self.cols.plan[i])][0]

    def currency(self, i: int) -> str:
        return GEO[int(self.cols.geo[i])][3]

    def profile(self, i: int, *, created: float, last_seen: float) -> dict[str, Any]:
        """The engage ``$properties`` of user ``i`` (datetimes as UTC, no zone: contract §5)."""
        c = self.cols
        x = self.extras[i]
        city, region, country, _currency, _w = GEO[int(c.geo[i])]
        first = FIRST_NAMES[int(x[0] * len(FIRST_NAMES))]
        last = LAST_NAMES[int(x[1] * len(LAST_NAMES))]
        email_name = (first + "." + last).lower().encode("ascii", "ignore").decode()
        tags = [t for j, t in enumerate(TAGS) if (int(x[2] * 1000) >> j) & 1 and j < 5][:3]
        props: dict[str, Any] = {
            "$created": _iso(created),
            "$email": f"{email_name}{i}@example.com",
            "$first_name": first,
            "$last_name": last,
            "$name": f"{first} {last}",
            "$city": city,
            "$region": region,
            "$country_code": country,
            "$last_seen": _iso(last_seen),
            "plan": self.plan_name(i),
            "age": 18 + int(x[3] * 50),
            "lifetime_value": round(float(x[4]) * 2000, 2),
            "is_verified": bool(x[5] < 0.8),
            "newsletter": bool(x[6] < 0.35),
            "signup_method": SIGNUP_METHODS[int(x[7] * len(SIGNUP_METHODS))],
            "tags": tags,
        }
        company = COMPANIES[int(x[0] * 97) % len(COMPANIES)]
        if company:
            props["company"] = company
        return props


def _uuid(raw: bytes) -> str:
    b = bytearray(raw)
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(math.floor(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S")
