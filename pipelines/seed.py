"""The reference dataset behind `lethe seed`: a 3D-printing cloud platform with a known retention mix.

Demos, tests and benchmarks need data whose due rows are known in advance: accounts deleted long
ago and inside the grace period, logs on both sides of their cutoff, rows under active and
released legal holds, all relative to one as-of date and identical for one seed. Faker is far too
slow to call per row at ten million rows, so it only fills small value pools; numpy samples them
in chunks, and the chunks go to the store by COPY (PostgreSQL) or executemany (SQLite).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa

from pipelines import reference_schema as schema
from pipelines.store import make_sqlite_dir, reach

CHUNK = 100_000
GRACE_DAYS = 30
DAY = 86_400
YEAR = 365 * DAY
NULL_TS = np.iinfo(np.int64).min  # sentinel for a NULL timestamp in an int64 column of epoch seconds

# Share of --rows per table; access_logs takes the rest, as web logs dwarf everything else.
SHARES: dict[str, float] = {
    "accounts": 0.05,
    "teams": 0.005,
    "orders": 0.08,
    "support_tickets": 0.03,
    "newsletter_subscriptions": 0.03,
    "feedback": 0.02,
    "uploaded_files": 0.05,
    "marketing_profiles": 0.035,
}
MIN_ACCOUNTS = 60  # enough for every kind of account the mix and the holds need
MIN_ROWS = 20
N_HOLDS = 5

COUNTRIES = np.array(["US", "DE", "GB", "FR", "NL", "IT", "ES", "PL", "SE", "CA", "AU", "JP", "BR", "IN",
                      "CH", "AT", "CZ", "DK", "FI", "NO"], dtype=object)
COUNTRY_WEIGHTS = np.array([26, 14, 10, 8, 5, 5, 5, 4, 3, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1], dtype=float)
CHANNELS = np.array(["web", "app", "partner", "api"], dtype=object)
CHANNEL_WEIGHTS = np.array([60, 25, 5, 10], dtype=float)
FREE_MAIL = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "gmx.de", "web.de",
             "hotmail.com", "aol.com", "mail.com"]
PRINTERS = np.array([
    "Prusa MK4S", "Prusa Core One", "Prusa XL", "Bambu Lab X1 Carbon", "Bambu Lab P1S", "Bambu Lab A1 mini",
    "Creality Ender-3 V3", "Creality K1 Max", "Anycubic Kobra 3", "Elegoo Neptune 4 Pro", "Ultimaker S5",
    "Formlabs Form 4", "Elegoo Saturn 4 Ultra", "Voron 2.4", "Raise3D Pro3",
], dtype=object)
SEGMENTS = np.array(["hobbyist", "maker", "education", "professional", "enterprise", "reseller"],
                    dtype=object)
TEAM_KINDS = np.array(["Lab", "Studio", "Works", "Makers", "Print Farm", "R&D"], dtype=object)
TOPICS = ["PLA", "PETG", "resin", "cosplay", "miniatures", "engineering", "prototyping", "TPU", "nylon",
          "cad", "slicers", "farms", "multicolour"]
FILE_EXTS = np.array([".stl", ".3mf", ".obj", ".gcode", ".step"], dtype=object)
APP_ROUTES = ["/", "/login", "/logout", "/dashboard", "/printers", "/prints", "/prints/queue", "/files",
              "/files/upload", "/store", "/store/cart", "/store/checkout", "/support", "/account/settings",
              "/api/v2/jobs", "/api/v2/printers/status", "/api/v2/files", "/community", "/pricing"]
B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
BCRYPT = np.frombuffer(b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
_UNSAFE = re.compile(r"[\t\r\n\\]+")


def seed(
    store_url: str,
    rows: int = 10_000,
    seed: int = 0,
    as_of: dt.date | None = None,
    progress: bool = False,
    replace: bool = False,
) -> dict[str, int]:
    """Create the reference tables in `store_url` and fill them with about `rows` rows in total.

    The same (rows, seed, as_of) always gives the same data. `as_of` (default: today, UTC) anchors
    the retention mix. Raises ValueError when the store already has any reference table, unless
    `replace` is true, in which case those tables are dropped first. Returns rows per table.
    """
    if rows < 1:
        raise ValueError(f"rows must be a positive number, not {rows}")
    if as_of is None:
        as_of = dt.datetime.now(dt.UTC).date()
    make_sqlite_dir(store_url)
    engine = reach(sa.create_engine(store_url), store_url)
    try:
        _prepare(engine, replace)
        plan = _plan(rows)
        gen = _Generator(seed=seed, as_of=as_of, sizes=plan)
        writer = _writer_for(engine)
        counts: dict[str, int] = {}
        with _progress_bar(progress) as bar, writer:
            for name in schema.TABLE_NAMES:  # accounts first: the other tables refer to its users
                table = schema.metadata.tables[name]
                total = plan[name]
                task = bar.add_task(table.name, total=total) if bar else None
                counts[table.name] = 0
                for chunk in gen.chunks(table.name):
                    n = writer.write(table, chunk)
                    counts[table.name] += n
                    if bar:
                        bar.advance(task, n)
                writer.index(table)
        return counts
    finally:
        engine.dispose()


def plan_rows(rows: int) -> dict[str, int]:
    """Rows per table for a requested total: what `seed` will insert."""
    return _plan(rows)


# ---------------------------------------------------------------------------------------------- setup


def _prepare(engine: sa.Engine, replace: bool) -> None:
    present = sorted(set(sa.inspect(engine).get_table_names()) & set(schema.TABLE_NAMES))
    if present and not replace:
        where = engine.url.render_as_string(hide_password=True)
        raise ValueError(
            f"{where} already has reference tables ({', '.join(present)}); seed into an empty store, "
            "or pass replace=True to drop and recreate them"
        )
    if present:
        schema.metadata.drop_all(engine, tables=[schema.metadata.tables[t] for t in present])
    # Tables first, indexes after the load: building an index once is far cheaper than maintaining it.
    with engine.begin() as conn:
        for name in schema.TABLE_NAMES:
            conn.execute(sa.schema.CreateTable(schema.metadata.tables[name]))


def _plan(rows: int) -> dict[str, int]:
    sizes = {name: max(MIN_ROWS, round(rows * share)) for name, share in SHARES.items()}
    sizes["accounts"] = max(MIN_ACCOUNTS, sizes["accounts"])
    # One marketing profile per account at most.
    sizes["marketing_profiles"] = min(sizes["marketing_profiles"], sizes["accounts"])
    sizes["access_logs"] = max(MIN_ROWS * 5, rows - sum(sizes.values()) - N_HOLDS)
    sizes["legal_holds"] = N_HOLDS
    return {name: sizes[name] for name in schema.TABLE_NAMES}


def _progress_bar(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn())


# ---------------------------------------------------------------------------------------------- data

# A chunk is column name -> (kind, values). Kinds: "int" (int64, 0 = NULL where nullable), "str"
# (object array, None = NULL), "ts" (int64 epoch seconds, NULL_TS = NULL), "money" (int64 cents).
Chunk = dict[str, tuple[str, np.ndarray]]


@dataclass
class _Pools:
    """Small pools of realistic values, filled once by Faker and sampled by index thereafter."""

    first: np.ndarray
    last: np.ndarray
    local_first: np.ndarray
    local_last: np.ndarray
    domains: np.ndarray
    domain_weights: np.ndarray
    spam_domains: np.ndarray
    phones: np.ndarray
    addresses: np.ndarray
    companies: np.ndarray
    team_words: np.ndarray
    ipv4: np.ndarray
    ipv6: np.ndarray
    urls: np.ndarray
    user_agents: np.ndarray
    bodies: np.ndarray
    comments: np.ndarray
    words: np.ndarray
    emails: np.ndarray  # newsletter subscribers without an account
    suffix: np.ndarray = field(default_factory=lambda: np.array([""] * 4 + [str(i) for i in range(1, 1000)],
                                                                  dtype=object))

    @classmethod
    @functools.lru_cache(maxsize=2)  # Faker is the slow part of a small seed; pools are never mutated
    def build(cls, seed: int) -> _Pools:
        from faker import Faker

        fake = Faker("en_US")
        fake.seed_instance(seed)

        def pool(fn: Callable[[], str], n: int) -> np.ndarray:
            # Tabs, newlines and backslashes would need escaping in COPY's text format; keep them out.
            return np.array([_UNSAFE.sub(", ", fn()) for _ in range(n)], dtype=object)

        first = pool(fake.first_name, 800)
        last = pool(fake.last_name, 1000)
        company_domains = [fake.domain_name() for _ in range(200)]
        domains = np.array(FREE_MAIL + company_domains, dtype=object)
        share = 12 / len(company_domains)
        weights = np.array([30, 18, 10, 8, 4, 4, 4, 6, 2, 2] + [share] * len(company_domains))
        ipv4 = pool(fake.ipv4_public, 8_000)
        ipv6 = pool(fake.ipv6, 2_000)
        paths = [fake.uri_path() for _ in range(300)]
        urls = pool(lambda: "https://cloud3d.example" + _route(fake, paths), 3_000)
        pools = cls(
            first=first, last=last,
            local_first=np.array([_local(s) for s in first], dtype=object),
            local_last=np.array([_local(s) for s in last], dtype=object),
            domains=domains, domain_weights=weights / weights.sum(),
            spam_domains=pool(lambda: fake.domain_word() + "-mail." + fake.tld(), 100),
            phones=pool(fake.phone_number, 3_000),
            addresses=pool(lambda: fake.address().replace("\n", ", "), 1_500),
            companies=pool(fake.company, 800),
            team_words=pool(fake.last_name, 500),
            ipv4=ipv4, ipv6=ipv6, urls=urls,
            user_agents=pool(fake.user_agent, 800),
            bodies=pool(lambda: fake.paragraph(nb_sentences=4), 3_000),
            comments=pool(lambda: fake.sentence(nb_words=12), 2_000),
            words=pool(fake.word, 1_000),
            emails=pool(fake.email, 1_500),
        )
        return pools


def _local(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower()) or "user"


def _route(fake, paths: list[str]) -> str:
    r = fake.random.random()
    if r < 0.6:
        route = fake.random.choice(APP_ROUTES)
    elif r < 0.85:
        route = f"/prints/{fake.random.randint(1, 999_999)}"
    else:
        route = "/" + fake.random.choice(paths)
    if fake.random.random() < 0.2:
        route += f"?page={fake.random.randint(1, 40)}"
    return route


@dataclass
class _Accounts:
    """What other tables need to know about the accounts: emails, countries, and the hold subjects."""

    email: np.ndarray
    country: np.ndarray
    created_at: np.ndarray
    due_user: int  # deleted > grace before as_of, under an active subject hold
    released_user: int  # deleted > grace before as_of, its hold released
    log_user: int  # live, its access logs under an active subject+table hold


class _Generator:
    def __init__(self, seed: int, as_of: dt.date, sizes: dict[str, int]):
        self.seed = seed
        self.sizes = sizes
        self.as_of = int((as_of - dt.date(1970, 1, 1)).days) * DAY
        self.as_of_date = as_of
        self.pools = _Pools.build(seed)
        self.accounts: _Accounts | None = None

    def rng(self, table: str, chunk: int) -> np.random.Generator:
        # Per-table, per-chunk streams: one table's size never shifts another table's values.
        return np.random.default_rng([self.seed, schema.TABLE_NAMES.index(table), chunk])

    def chunks(self, table: str) -> Iterator[Chunk]:
        if table == "accounts":
            yield from self._accounts()
            return
        if table == "legal_holds":
            yield self._holds()
            return
        if table == "marketing_profiles":
            yield from self._marketing()
            return
        make = getattr(self, "_" + table)
        total = self.sizes[table]
        for i, start in enumerate(range(0, total, CHUNK)):
            n = min(CHUNK, total - start)
            ids = np.arange(start + 1, start + n + 1, dtype=np.int64)
            yield make(self.rng(table, i), ids)

    # -- helpers

    def _ips(self, rng: np.random.Generator, n: int) -> np.ndarray:
        v6 = rng.random(n) < 0.2
        out = self.pools.ipv4[rng.integers(0, len(self.pools.ipv4), n)]
        out[v6] = self.pools.ipv6[rng.integers(0, len(self.pools.ipv6), int(v6.sum()))]
        return out

    def _users(self, rng: np.random.Generator, n: int, null_share: float = 0.0) -> np.ndarray:
        users = rng.integers(1, self.sizes["accounts"] + 1, n, dtype=np.int64)
        if null_share:
            users[rng.random(n) < null_share] = 0
        return users

    def _ago(self, rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
        """Timestamps uniformly between `high` and `low` seconds before as_of (negative: after it)."""
        return self.as_of - rng.integers(int(low), int(high), n, dtype=np.int64)

    def _email_of(self, users: np.ndarray) -> np.ndarray:
        out = self.accounts.email[np.maximum(users, 1) - 1].copy()
        missing = users == 0
        out[missing] = self.pools.emails[users[missing] % len(self.pools.emails)]
        return out

    # -- tables

    def _accounts(self) -> Iterator[Chunk]:
        n = self.sizes["accounts"]
        rng = self.rng("accounts", 0)
        p = self.pools
        ids = np.arange(1, n + 1, dtype=np.int64)
        fi = rng.integers(0, len(p.first), n)
        li = rng.integers(0, len(p.last), n)
        domain = p.domains[rng.choice(len(p.domains), n, p=p.domain_weights)]
        number = p.suffix[rng.integers(0, len(p.suffix), n)]
        email = p.local_first[fi] + "." + p.local_last[li] + number + "@" + domain
        country = COUNTRIES[rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum())]
        channel = CHANNELS[rng.choice(len(CHANNELS), n, p=CHANNEL_WEIGHTS / CHANNEL_WEIGHTS.sum())]
        signup_ip = self._ips(rng, n)
        created = self._ago(rng, n, DAY, 6 * YEAR)
        deleted = np.full(n, NULL_TS, dtype=np.int64)

        # Exact counts, so that even a tiny dataset has every kind of account.
        order = rng.permutation(n)
        n_due, n_grace = max(4, round(0.10 * n)), max(2, round(0.03 * n))
        due, grace = order[:n_due], order[n_due:n_due + n_grace]
        deleted[due] = self._ago(rng, n_due, (GRACE_DAYS + 1) * DAY, 2 * YEAR)
        created[due] = deleted[due] - rng.integers(DAY, 4 * YEAR, n_due)
        deleted[grace] = self._ago(rng, n_grace, 3600, (GRACE_DAYS - 1) * DAY)
        created[grace] = np.minimum(created[grace], deleted[grace] - DAY)

        # Sign-up waves: bursts of throwaway accounts from one network, one domain, one day, later
        # deleted. The anti-spam aggregate exists for them, and they make groups above min_group_size.
        wave_members = np.sort(due)[4:][: int(0.4 * n_due)]
        for w, members in enumerate(np.array_split(wave_members, max(1, len(wave_members) // 8))):
            if len(members) == 0:
                continue
            day = self.as_of - int(rng.integers(60, 4 * 365)) * DAY
            created[members] = day + rng.integers(0, DAY, len(members))
            deleted[members] = created[members] + rng.integers(DAY, 20 * DAY, len(members))
            country[members] = COUNTRIES[rng.integers(0, len(COUNTRIES))]
            channel[members] = "api"
            prefix = p.ipv4[rng.integers(0, len(p.ipv4))].rsplit(".", 1)[0]
            signup_ip[members] = np.array([f"{prefix}.{o}" for o in rng.integers(1, 255, len(members))],
                                          dtype=object)
            spam = p.spam_domains[w % len(p.spam_domains)]
            number = p.suffix[rng.integers(4, len(p.suffix), len(members))]
            email[members] = p.local_first[fi[members]] + number + "@" + spam

        phone = p.phones[rng.integers(0, len(p.phones), n)]
        phone[rng.random(n) < 0.15] = None
        due_sorted = np.sort(due)
        live = np.setdiff1d(np.arange(n), np.concatenate([due, grace]))
        self.accounts = _Accounts(
            email=email, country=country, created_at=created,
            due_user=int(due_sorted[0]) + 1, released_user=int(due_sorted[1]) + 1, log_user=int(live[0]) + 1,
        )
        for start in range(0, n, CHUNK):
            s = slice(start, start + CHUNK)
            m = len(ids[s])
            yield {
                "user_id": ("int", ids[s]),
                "email": ("str", email[s]),
                "full_name": ("str", p.first[fi[s]] + " " + p.last[li[s]]),
                "phone": ("str", phone[s]),
                "password_hash": ("str", _bcrypt(rng, m)),
                "country": ("str", country[s]),
                "signup_ip": ("str", signup_ip[s]),
                "signup_channel": ("str", channel[s]),
                "created_at": ("ts", created[s]),
                "deleted_at": ("ts", deleted[s]),
            }

    def _teams(self, rng: np.random.Generator, ids: np.ndarray) -> Chunk:
        n, p = len(ids), self.pools
        users = self._users(rng, n)
        company = p.companies[rng.integers(0, len(p.companies), n)]
        company[rng.random(n) < 0.3] = None
        names = p.team_words[rng.integers(0, len(p.team_words), n)] + " " + TEAM_KINDS[rng.integers(0, 6, n)]
        return {
            "id": ("int", ids), "user_id": ("int", users), "team_name": ("str", names),
            "company": ("str", company), "email": ("str", self._email_of(users)),
            "password_hash": ("str", _bcrypt(rng, n)),
            "created_at": ("ts", np.maximum(self.accounts.created_at[users - 1],
                                            self._ago(rng, n, DAY, 5 * YEAR))),
        }

    def _orders(self, rng: np.random.Generator, ids: np.ndarray) -> Chunk:
        n, p = len(ids), self.pools
        users = self._users(rng, n)
        ship = rng.integers(0, len(p.addresses), n)
        bill = np.where(rng.random(n) < 0.7, ship, rng.integers(0, len(p.addresses), n))
        last4 = np.char.zfill(rng.integers(0, 10_000, n).astype(str), 4).astype(object)
        last4[rng.random(n) < 0.1] = None  # paid by invoice or wallet: no card
        created = self._ago(rng, n, 0, 9 * YEAR)
        if ids[0] == 1:
            created[0] = self.as_of - (8 * YEAR + 30 * DAY)  # the order under a record hold: past 7 years
        return {
            "id": ("int", ids), "user_id": ("int", users), "email": ("str", self._email_of(users)),
            "shipping_address": ("str", p.addresses[ship]), "billing_address": ("str", p.addresses[bill]),
            "payment_token": ("str", "tok_" + _random_text(rng, n, 24, B62)), "card_last4": ("str", last4),
            "amount": ("money", np.round(rng.lognormal(7.8, 1.0, n)).astype(np.int64) + 99),
            "created_at": ("ts", created),
        }

    def _support_tickets(self, rng: np.random.Generator, ids: np.ndarray) -> Chunk:
        n, p = len(ids), self.pools
        users = self._users(rng, n)
        closed = self._ago(rng, n, 0, 5 * YEAR)
        later = rng.random(n) < 0.02
        closed[later] = self._ago(rng, int(later.sum()), -5 * DAY, -3600)  # closed after as_of: not due
        opened = closed - rng.integers(600, 30 * DAY, n)
        open_now = rng.random(n) < 0.08
        opened[open_now] = self._ago(rng, int(open_now.sum()), 3600, 60 * DAY)
        closed[open_now] = NULL_TS
        if ids[0] == 1:  # the ticket under the hold placed on the as-of date: closed 4 years ago
            closed[0] = self.as_of - 4 * YEAR
            opened[0] = closed[0] - 3 * DAY
        serial = "SN" + _random_text(rng, n, 10, B62[:36])
        return {
            "id": ("int", ids), "user_id": ("int", users), "email": ("str", self._email_of(users)),
            "country": ("str", self.accounts.country[users - 1]),
            "printer_model": ("str", PRINTERS[rng.integers(0, len(PRINTERS), n)]),
            "serial_number": ("str", serial), "body": ("str", p.bodies[rng.integers(0, len(p.bodies), n)]),
            "opened_at": ("ts", opened), "closed_at": ("ts", closed),
        }

    def _newsletter_subscriptions(self, rng: np.random.Generator, ids: np.ndarray) -> Chunk:
        n = len(ids)
        users = self._users(rng, n, null_share=0.2)
        anon = users == 0
        email = self._email_of(users)
        email[anon] = self.pools.emails[rng.integers(0, len(self.pools.emails), int(anon.sum()))]
        subscribed = self._ago(rng, n, DAY, 6 * YEAR)
        unsub = np.full(n, NULL_TS, dtype=np.int64)
        gone = rng.random(n) < 0.25
        # Between subscribing and ten days after as_of: a few unsubscribe "later" and are not due yet.
        unsub[gone] = subscribed[gone] + (rng.random(int(gone.sum()))
                                          * (self.as_of + 10 * DAY - subscribed[gone])).astype(np.int64)
        return {
            "id": ("int", ids), "user_id": ("int", users), "email": ("str", email),
            "subscribed_at": ("ts", subscribed), "unsubscribed_at": ("ts", unsub),
        }

    def _feedback(self, rng: np.random.Generator, ids: np.ndarray) -> Chunk:
        n, p = len(ids), self.pools
        comment = p.comments[rng.integers(0, len(p.comments), n)]
        comment[rng.random(n) < 0.2] = None
        return {
            "id": ("int", ids), "user_id": ("int", self._users(rng, n, null_share=0.3)),
            "rating": ("int", rng.choice(np.arange(1, 6), n, p=[0.06, 0.06, 0.14, 0.34, 0.40])),
            "comment": ("str", comment), "created_at": ("ts", self._ago(rng, n, -2 * DAY, 4 * YEAR)),
        }

    def _uploaded_files(self, rng: np.random.Generator, ids: np.ndarray) -> Chunk:
        n, p = len(ids), self.pools
        users = self._users(rng, n)
        ext = FILE_EXTS[rng.choice(len(FILE_EXTS), n, p=[0.5, 0.25, 0.05, 0.15, 0.05])]
        stem = p.words[rng.integers(0, len(p.words), n)] + "_" + p.words[rng.integers(0, len(p.words), n)]
        version = np.array(["", "_v2", "_v3", "_final", "_fixed"], dtype=object)[rng.integers(0, 5, n)]
        blob = _random_text(rng, n, 32, B62[:16])  # hex object name
        path = "s3://cloud3d-uploads/u/" + users.astype(str).astype(object) + "/" + blob + ext
        return {
            "id": ("int", ids), "user_id": ("int", users), "file_name": ("str", stem + version + ext),
            "storage_path": ("str", path),
            "size_bytes": ("int", np.round(rng.lognormal(14.5, 1.2, n)).astype(np.int64) + 1_024),
            "uploaded_at": ("ts", self._ago(rng, n, -DAY, 4 * YEAR)),
        }

    def _access_logs(self, rng: np.random.Generator, ids: np.ndarray) -> Chunk:
        n, p = len(ids), self.pools
        users = self._users(rng, n, null_share=0.25)
        ts = self._ago(rng, n, 0, 200 * DAY)
        later = rng.random(n) < 0.02
        ts[later] = self._ago(rng, int(later.sum()), -5 * DAY, -1)  # after as_of: not due
        ua = p.user_agents[rng.integers(0, len(p.user_agents), n)]
        ua[rng.random(n) < 0.02] = None
        if ids[0] == 1:  # the held user's visits, well past the 90-day cutoff
            held = slice(0, min(5, n))
            users[held] = self.accounts.log_user
            ts[held] = self.as_of - 120 * DAY + np.arange(len(ids[held])) * 3600
        return {
            "id": ("int", ids), "user_id": ("int", users), "ip": ("str", self._ips(rng, n)),
            "url": ("str", p.urls[rng.integers(0, len(p.urls), n)]), "user_agent": ("str", ua),
            "ts": ("ts", ts),
        }

    def _marketing(self) -> Iterator[Chunk]:
        n, total = self.sizes["accounts"], self.sizes["marketing_profiles"]
        rng = self.rng("marketing_profiles", 0)
        users = np.sort(rng.choice(n, total, replace=False)).astype(np.int64) + 1
        given = np.minimum(self.accounts.created_at[users - 1] + rng.integers(0, 30 * DAY, total),
                           self.as_of - 3600)
        withdrawn = np.full(total, NULL_TS, dtype=np.int64)
        gone = rng.random(total) < 0.3
        span = self.as_of - given[gone]
        withdrawn[gone] = given[gone] + (rng.random(int(gone.sum())) * span).astype(np.int64)
        later = gone & (rng.random(total) < 0.1)
        withdrawn[later] = self._ago(rng, int(later.sum()), -60 * DAY, -3600)  # takes effect after as_of
        topics = np.array(TOPICS, dtype=object)
        pick = rng.integers(0, len(topics), (2, total))
        interests = topics[pick[0]] + "," + topics[pick[1]]
        interests[rng.random(total) < 0.1] = None
        ad_id = _uuid(rng, total)
        ad_id[rng.random(total) < 0.4] = None
        segment = SEGMENTS[rng.choice(len(SEGMENTS), total, p=[0.4, 0.25, 0.1, 0.15, 0.05, 0.05])]
        for start in range(0, total, CHUNK):
            s = slice(start, start + CHUNK)
            yield {
                "id": ("int", np.arange(start + 1, start + 1 + len(users[s]), dtype=np.int64)),
                "user_id": ("int", users[s]), "segment": ("str", segment[s]),
                "interests": ("str", interests[s]),
                "ad_id": ("str", ad_id[s]), "consent_given_at": ("ts", given[s]),
                "consent_withdrawn_at": ("ts", withdrawn[s]),
            }

    def _holds(self) -> Chunk:
        a, d = self.accounts, self.as_of
        # A released hold must be released by the wall clock too, or it would still be active.
        today = int((dt.datetime.now(dt.UTC).date() - dt.date(1970, 1, 1)).days) * DAY
        released = min(d, today) - 15 * DAY
        rows = [
            # (hold_id, subject_id, table_name, record_key, case_ref, placed_at, released_at)
            (1, a.due_user, None, None, "LIT-2025-0173", d - 200 * DAY, NULL_TS),
            (2, 0, "orders", "1", "TAX-AUDIT-2025-12", d - 90 * DAY, NULL_TS),
            (3, a.log_user, "access_logs", None, "SEC-INC-2025-044", d - 30 * DAY, NULL_TS),
            (4, a.released_user, None, None, "LIT-2023-0088", d - 400 * DAY, released),
            (5, 0, "support_tickets", "1", "REG-INQ-2026-007", d, NULL_TS),
        ]
        cols = list(zip(*rows, strict=True))

        def obj(values: tuple) -> np.ndarray:
            return np.array(values, dtype=object)

        return {
            "hold_id": ("int", np.array(cols[0], dtype=np.int64)),
            "subject_id": ("int", np.array(cols[1], dtype=np.int64)),
            "table_name": ("str", obj(cols[2])), "record_key": ("str", obj(cols[3])),
            "case_ref": ("str", obj(cols[4])),
            "placed_at": ("ts", np.array(cols[5], dtype=np.int64)),
            "released_at": ("ts", np.array(cols[6], dtype=np.int64)),
        }


def _random_text(rng: np.random.Generator, n: int, length: int, alphabet: np.ndarray) -> np.ndarray:
    """`n` random strings of `length` characters from an ASCII `alphabet`, without a per-row loop."""
    codes = alphabet[rng.integers(0, len(alphabet), (n, length))]
    return np.ascontiguousarray(codes).view(f"S{length}").ravel().astype(f"U{length}").astype(object)


def _bcrypt(rng: np.random.Generator, n: int) -> np.ndarray:
    # Looks like bcrypt (cost 12, 22-char salt + 31-char hash) but is random: no password behind it.
    return "$2b$12$" + _random_text(rng, n, 53, BCRYPT)


def _uuid(rng: np.random.Generator, n: int) -> np.ndarray:
    hexes = _random_text(rng, n, 32, B62[:16])
    # Random (version 4, variant 10xx) UUIDs, as mobile advertising ids are.
    variant = np.array(list("89AB"), dtype=object)[rng.integers(0, 4, n)]
    pairs = zip(hexes, variant, strict=True)
    return np.array([f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{v}{h[17:20]}-{h[20:]}" for h, v in pairs], dtype=object)


# ---------------------------------------------------------------------------------------------- writing


class _Timestamps:
    """Epoch seconds -> text, from a pool of day and time-of-day strings rather than strftime per row."""

    def __init__(self, time_suffix: str):
        self.base = (dt.date(1960, 1, 1) - dt.date(1970, 1, 1)).days
        days = [dt.date(1960, 1, 1) + dt.timedelta(days=i) for i in range(365 * 120)]
        self.days = np.array([d.isoformat() + " " for d in days], dtype=object)
        self.tods = np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{time_suffix}"
                              for s in range(DAY)], dtype=object)

    def __call__(self, secs: np.ndarray, null: object) -> np.ndarray:
        missing = secs == NULL_TS
        safe = np.where(missing, 0, secs)
        out = self.days[safe // DAY - self.base] + self.tods[safe % DAY]
        out[missing] = null
        return out


@functools.lru_cache(maxsize=2)
def _timestamps(time_suffix: str) -> _Timestamps:
    return _Timestamps(time_suffix)


class _Writer:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.raw = None

    def __enter__(self):
        self.raw = self.engine.raw_connection()
        return self

    def __exit__(self, *exc):
        self.raw.close()
        return False

    def write(self, table: sa.Table, chunk: Chunk) -> int:
        raise NotImplementedError

    def index(self, table: sa.Table) -> None:
        cur = self.raw.cursor()
        for idx in sorted(table.indexes, key=lambda i: i.name):
            cur.execute(str(sa.schema.CreateIndex(idx).compile(dialect=self.engine.dialect)))
        cur.close()
        self.raw.commit()


class _SQLiteWriter(_Writer):
    def __init__(self, engine: sa.Engine):
        super().__init__(engine)
        # SQLAlchemy's own storage format for DateTime on SQLite, so its comparisons and parsing agree.
        self.ts = _timestamps(".000000")

    def __enter__(self):
        super().__enter__()
        cur = self.raw.cursor()
        self.journal = cur.execute("PRAGMA journal_mode").fetchone()[0]
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=OFF")  # a crash mid-seed only loses a dataset we can regenerate
        cur.close()
        return self

    def __exit__(self, *exc):
        cur = self.raw.cursor()
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA journal_mode={self.journal}")
        cur.close()
        return super().__exit__(*exc)

    def write(self, table: sa.Table, chunk: Chunk) -> int:
        columns = []
        for name, (kind, values) in chunk.items():
            if kind == "ts":
                columns.append(self.ts(values, None).tolist())
            elif kind == "money":
                columns.append((values / 100).tolist())
            elif kind == "int" and table.c[name].nullable:
                obj = values.astype(object)
                obj[values == 0] = None
                columns.append(obj.tolist())
            else:
                columns.append(values.tolist())
        quote = self.engine.dialect.identifier_preparer.quote
        statement = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in chunk)}) "
                     f"VALUES ({', '.join('?' * len(chunk))})")
        cur = self.raw.cursor()
        cur.executemany(statement, zip(*columns, strict=True))
        cur.close()
        self.raw.commit()
        return len(columns[0])


class _PostgresWriter(_Writer):
    def __init__(self, engine: sa.Engine):
        super().__init__(engine)
        self.ts = _timestamps("")
        self.cents = np.array([f".{i:02d}" for i in range(100)], dtype=object)

    def write(self, table: sa.Table, chunk: Chunk) -> int:
        columns = []
        for name, (kind, values) in chunk.items():
            if kind == "ts":
                columns.append(self.ts(values, r"\N"))
            elif kind == "money":
                columns.append((values // 100).astype(str).astype(object) + self.cents[values % 100])
            elif kind == "int":
                text = values.astype(str).astype(object)
                if table.c[name].nullable:
                    text[values == 0] = r"\N"
                columns.append(text)
            else:
                text = values.copy()
                text[text == None] = r"\N"  # noqa: E711 - elementwise comparison on an object array
                columns.append(text)
        body = "\n".join(map("\t".join, zip(*(c.tolist() for c in columns), strict=True))) + "\n"
        with self.raw.driver_connection.cursor() as cur:
            quote = self.engine.dialect.identifier_preparer.quote
            with cur.copy(f"COPY {quote(table.name)} ({', '.join(quote(c) for c in chunk)}) FROM STDIN") as copy:
                copy.write(body.encode())
        self.raw.driver_connection.commit()
        return len(columns[0])


def _writer_for(engine: sa.Engine) -> _Writer:
    if engine.dialect.name == "sqlite":
        return _SQLiteWriter(engine)
    if engine.dialect.name == "postgresql":
        return _PostgresWriter(engine)
    raise ValueError(f"seed supports SQLite and PostgreSQL stores, not {engine.dialect.name}")
