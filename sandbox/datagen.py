"""Deterministic raw data for the William Grant & Sons sandbox warehouse.

:func:`generate` (re)creates ``raw.duckdb`` with the source systems the tenant's dbt project
reads: ERP orders and products, the CRM's distributors and sales reps, logistics
(warehouses, shipments, distributor depletions) and finance (FX rates, budgets, invoices,
payments). Small reference tables come from a seeded :class:`random.Random`; the large
tables are produced inside DuckDB from ``range()`` and seeded ``hash()`` values so that
``scale=1000`` yields millions of rows in seconds. The same seed, scale and ``now`` always
produce identical data. Every table carries a ``loaded_at`` timestamp shortly before
``now`` so that ``dbt source freshness`` passes on freshly generated data.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import duckdb

from sandbox.warehouse import RAW_DB, database_path, warehouse_dir

__all__ = [
    "BRANDS",
    "COUNTRIES",
    "HISTORY_DAYS",
    "SOURCE_TABLES",
    "GenerationResult",
    "generate",
]

HISTORY_DAYS = 365
"""Days of order, depletion and FX history ending at ``now``."""

SOURCE_TABLES: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "erp.brands": (
            ("brand_id", "INTEGER"),
            ("brand_name", "VARCHAR"),
            ("category", "VARCHAR"),
            ("country_of_origin", "VARCHAR"),
            ("launched_year", "INTEGER"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "erp.products": (
            ("product_id", "INTEGER"),
            ("sku", "VARCHAR"),
            ("product_name", "VARCHAR"),
            ("brand_id", "INTEGER"),
            ("bottle_size_ml", "INTEGER"),
            ("abv", "DECIMAL(5,2)"),
            ("bottles_per_case", "INTEGER"),
            ("list_price_gbp", "DECIMAL(12,2)"),
            ("is_active", "BOOLEAN"),
            ("updated_at", "TIMESTAMP"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "erp.orders": (
            ("order_id", "BIGINT"),
            ("order_number", "VARCHAR"),
            ("distributor_id", "INTEGER"),
            ("sales_rep_id", "INTEGER"),
            ("order_date", "DATE"),
            ("requested_delivery_date", "DATE"),
            ("currency_code", "VARCHAR"),
            ("status", "VARCHAR"),
            ("created_at", "TIMESTAMP"),
            ("updated_at", "TIMESTAMP"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "erp.order_lines": (
            ("order_line_id", "BIGINT"),
            ("order_id", "BIGINT"),
            ("line_number", "INTEGER"),
            ("product_id", "INTEGER"),
            ("quantity_cases", "INTEGER"),
            ("unit_price", "DECIMAL(12,2)"),
            ("discount_pct", "DECIMAL(5,2)"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "crm.distributors": (
            ("distributor_id", "INTEGER"),
            ("distributor_name", "VARCHAR"),
            ("country_code", "VARCHAR"),
            ("channel_code", "VARCHAR"),
            ("account_manager_id", "INTEGER"),
            ("credit_limit_gbp", "DECIMAL(14,2)"),
            ("status", "VARCHAR"),
            ("created_at", "TIMESTAMP"),
            ("updated_at", "TIMESTAMP"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "crm.sales_reps": (
            ("rep_id", "INTEGER"),
            ("rep_name", "VARCHAR"),
            ("email", "VARCHAR"),
            ("region_code", "VARCHAR"),
            ("hired_date", "DATE"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "logistics.warehouses": (
            ("warehouse_id", "INTEGER"),
            ("warehouse_code", "VARCHAR"),
            ("warehouse_name", "VARCHAR"),
            ("country_code", "VARCHAR"),
            ("capacity_cases", "INTEGER"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "logistics.shipments": (
            ("shipment_id", "BIGINT"),
            ("order_id", "BIGINT"),
            ("warehouse_id", "INTEGER"),
            ("carrier", "VARCHAR"),
            ("cases_shipped", "INTEGER"),
            ("shipped_at", "TIMESTAMP"),
            ("delivered_at", "TIMESTAMP"),
            ("status", "VARCHAR"),
            ("freight_cost_gbp", "DECIMAL(12,2)"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "logistics.depletions": (
            ("depletion_id", "BIGINT"),
            ("distributor_id", "INTEGER"),
            ("product_id", "INTEGER"),
            ("depletion_date", "DATE"),
            ("outlet_type", "VARCHAR"),
            ("cases_depleted", "DECIMAL(10,2)"),
            ("reported_at", "TIMESTAMP"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "finance.fx_rates": (
            ("rate_date", "DATE"),
            ("currency_code", "VARCHAR"),
            ("units_per_gbp", "DECIMAL(18,6)"),
            ("rate_source", "VARCHAR"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "finance.budgets": (
            ("budget_id", "INTEGER"),
            ("budget_month", "DATE"),
            ("fiscal_year", "INTEGER"),
            ("brand_id", "INTEGER"),
            ("region_code", "VARCHAR"),
            ("budget_cases", "DECIMAL(14,2)"),
            ("budget_net_revenue_gbp", "DECIMAL(16,2)"),
            ("budget_version", "VARCHAR"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "finance.invoices": (
            ("invoice_id", "BIGINT"),
            ("invoice_number", "VARCHAR"),
            ("order_id", "BIGINT"),
            ("invoice_date", "DATE"),
            ("due_date", "DATE"),
            ("currency_code", "VARCHAR"),
            ("amount", "DECIMAL(16,2)"),
            ("loaded_at", "TIMESTAMP"),
        ),
        "finance.payments": (
            ("payment_id", "BIGINT"),
            ("invoice_id", "BIGINT"),
            ("payment_date", "DATE"),
            ("amount", "DECIMAL(16,2)"),
            ("payment_method", "VARCHAR"),
            ("loaded_at", "TIMESTAMP"),
        ),
    }
)
"""Every raw table as ``schema.table`` with its ordered ``(column, DuckDB type)`` pairs."""

# brand_id, name, category, origin, launched, price per 70cl bottle (GBP) for the entry expression
BRANDS: tuple[tuple[int, str, str, str, int, float], ...] = (
    (1, "Glenfiddich", "single_malt", "GB", 1887, 38.0),
    (2, "The Balvenie", "single_malt", "GB", 1892, 52.0),
    (3, "Grant's", "blended_scotch", "GB", 1898, 17.0),
    (4, "Monkey Shoulder", "blended_malt", "GB", 2005, 30.0),
    (5, "Hendrick's", "gin", "GB", 1999, 32.0),
    (6, "Tullamore D.E.W.", "irish_whiskey", "IE", 1829, 25.0),
    (7, "Sailor Jerry", "rum", "US", 1999, 22.0),
    (8, "Drambuie", "liqueur", "GB", 1909, 27.0),
    (9, "Milagro", "tequila", "MX", 1998, 31.0),
    (10, "Reyka", "vodka", "IS", 2005, 26.0),
    (11, "Kininvie", "single_malt", "GB", 1990, 60.0),
    (12, "Ailsa Bay", "single_malt", "GB", 2007, 55.0),
)

# country_code, currency_code, indicative units per GBP, region_code, home warehouse_id
COUNTRIES: tuple[tuple[str, str, float, str, int], ...] = (
    ("GB", "GBP", 1.0, "UKI", 1),
    ("IE", "EUR", 1.17, "UKI", 3),
    ("DE", "EUR", 1.17, "EUR", 4),
    ("FR", "EUR", 1.17, "EUR", 4),
    ("ES", "EUR", 1.17, "EUR", 4),
    ("NL", "EUR", 1.17, "EUR", 4),
    ("IT", "EUR", 1.17, "EUR", 4),
    ("US", "USD", 1.27, "NAM", 5),
    ("CA", "CAD", 1.72, "NAM", 5),
    ("MX", "USD", 1.27, "NAM", 5),
    ("AU", "AUD", 1.93, "APAC", 6),
    ("JP", "JPY", 190.0, "APAC", 7),
    ("CN", "CNY", 9.2, "APAC", 7),
    ("TW", "TWD", 41.0, "APAC", 7),
)

REGIONS: tuple[str, ...] = ("UKI", "EUR", "NAM", "APAC")

_WAREHOUSES: tuple[tuple[int, str, str, str, int], ...] = (
    (1, "BEL", "Bellshill Bottling Hall", "GB", 900_000),
    (2, "GIR", "Girvan Distillery Store", "GB", 400_000),
    (3, "DUB", "Dublin Clonshaugh Depot", "IE", 250_000),
    (4, "RTM", "Rotterdam Euro Hub", "NL", 600_000),
    (5, "NWK", "Newark Import Terminal", "US", 700_000),
    (6, "SYD", "Sydney Botany Depot", "AU", 200_000),
    (7, "SHA", "Shanghai Waigaoqiao Bonded", "CN", 300_000),
)

_CHANNELS: tuple[str, ...] = ("OFF_TRADE", "ON_TRADE", "TRAVEL_RETAIL", "ECOM", "WHOLESALE")
_FIRST_NAMES: tuple[str, ...] = (
    "Ailsa", "Callum", "Eilidh", "Fraser", "Isla", "Jamie", "Kirsty", "Lachlan", "Morag", "Niall",
    "Orla", "Rory", "Siobhan", "Euan", "Fiona", "Hamish",
)  # fmt: skip
_LAST_NAMES: tuple[str, ...] = (
    "MacLeod", "Campbell", "Stewart", "Grant", "Robertson", "Murray", "Fraser", "Ross", "Sinclair",
    "Gordon", "Munro", "Douglas",
)  # fmt: skip


@dataclass(frozen=True)
class GenerationResult:
    """What :func:`generate` wrote: the raw database file and each table's row count."""

    raw_db_path: Path
    row_counts: Mapping[str, int]
    seed: int
    scale: float
    now: datetime
    tables: tuple[str, ...] = field(default=())

    @property
    def total_rows(self) -> int:
        """Rows across all raw tables."""
        return sum(self.row_counts.values())


def _normalise_now(now: datetime | None) -> datetime:
    """Return ``now`` as a naive UTC timestamp truncated to the second."""
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)


class _Sql:
    """SQL snippets producing seeded pseudo-random values from ``hash()``."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def h(self, key: str, salt: str) -> str:
        """Unsigned 64-bit hash of ``key`` under ``salt``."""
        return f"hash({self.seed}, {key}, '{salt}')"

    def u(self, key: str, salt: str) -> str:
        """Uniform value in [0, 1)."""
        return f"(({self.h(key, salt)} % 1000000) / 1000000.0)"

    def i(self, key: str, salt: str, lo: int, hi: int) -> str:
        """Uniform integer in [lo, hi]."""
        return f"cast({lo} + ({self.h(key, salt)} % {hi - lo + 1}) as integer)"

    def pick(self, key: str, salt: str, values: tuple[str, ...]) -> str:
        """One of ``values`` (string literals)."""
        literal = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        return f"list_element([{literal}], {self.i(key, salt, 1, len(values))})"

    def loaded_at(self, key: str, now_sql: str) -> str:
        """A load timestamp within the 90 minutes before ``now``."""
        return f"({now_sql} - to_minutes(cast({self.h(key, 'loaded')} % 90 as bigint)))"


def _counts(scale: float) -> dict[str, int]:
    """Row-count drivers for ``scale`` (reference data grows sub-linearly)."""
    root = math.sqrt(scale)
    return {
        "products": max(len(BRANDS), round(60 * root)),
        "distributors": max(10, round(50 * root)),
        "sales_reps": max(6, round(10 * scale**0.25)),
        "orders": max(20, round(400 * scale)),
        "depletions": max(50, round(1500 * scale)),
    }


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for schema in sorted({name.split(".")[0] for name in SOURCE_TABLES}):
        con.execute(f"create schema {schema}")
    for name, columns in SOURCE_TABLES.items():
        cols = ", ".join(f"{col} {typ}" for col, typ in columns)
        con.execute(f"create table {name} ({cols})")


def _load_reference(con: duckdb.DuckDBPyConnection, rng: random.Random, now: datetime, n_reps: int) -> None:
    """Small tables from Python: brands, warehouses, sales reps and the helper mappings."""

    def loaded() -> datetime:
        return now - timedelta(minutes=rng.randrange(0, 90))

    con.executemany(
        "insert into erp.brands values (?, ?, ?, ?, ?, ?)",
        [(b[0], b[1], b[2], b[3], b[4], loaded()) for b in BRANDS],
    )
    con.executemany(
        "insert into logistics.warehouses values (?, ?, ?, ?, ?, ?)",
        [(*w, loaded()) for w in _WAREHOUSES],
    )
    reps = []
    for rep_id in range(1, n_reps + 1):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        email = f"{first}.{last}.{rep_id}@wgrant.example".lower()
        hired = now.date() - timedelta(days=rng.randrange(200, 4000))
        reps.append((rep_id, f"{first} {last}", email, REGIONS[(rep_id - 1) % len(REGIONS)], hired, loaded()))
    con.executemany("insert into crm.sales_reps values (?, ?, ?, ?, ?, ?)", reps)

    con.execute(
        "create temp table _brands (brand_id integer, category varchar, base_price double, price_factor double)"
    )
    con.executemany(
        "insert into _brands values (?, ?, ?, ?)",
        [(b[0], b[2], b[5], round(rng.uniform(0.9, 1.1), 4)) for b in BRANDS],
    )
    con.execute(
        "create temp table _countries (idx integer, country_code varchar, currency_code varchar, "
        "units_per_gbp double, region_code varchar, warehouse_id integer)"
    )
    con.executemany(
        "insert into _countries values (?, ?, ?, ?, ?, ?)",
        [(i + 1, *c) for i, c in enumerate(COUNTRIES)],
    )


def _load_generated(
    con: duckdb.DuckDBPyConnection, s: _Sql, now: datetime, counts: Mapping[str, int], scale: float
) -> None:
    """Large tables, generated inside DuckDB."""
    now_sql = f"timestamp '{now.isoformat(sep=' ')}'"
    today_sql = f"date '{now.date().isoformat()}'"
    n_products, n_dist, n_reps = counts["products"], counts["distributors"], counts["sales_reps"]
    n_countries = len(COUNTRIES)

    con.execute(f"""
        insert into erp.products by name
        with base as (
            select cast(range + 1 as integer) as product_id from range({n_products})
        ), sized as (
            select
                product_id,
                cast(1 + (product_id - 1) % {len(BRANDS)} as integer) as brand_id,
                cast(list_element([700, 700, 700, 750, 1000, 350, 50], {s.i("product_id", "size", 1, 7)})
                    as integer) as bottle_size_ml,
                {
        s.pick(
            "product_id",
            "expr",
            (
                "Original",
                "12 Year Old",
                "15 Year Old",
                "18 Year Old",
                "Reserve",
                "Cask Finish",
                "Single Cask",
                "Limited Edition",
            ),
        )
    } as expression,
                {s.u("product_id", "price")} as price_u
            from base
        )
        select
            p.product_id,
            'WG-' || lpad(cast(p.product_id as varchar), 6, '0') as sku,
            b.brand_name || ' ' || p.expression || ' ' || cast(p.bottle_size_ml as varchar) || 'ml'
                as product_name,
            p.brand_id,
            p.bottle_size_ml,
            cast(list_element([40.0, 40.0, 43.0, 46.0, 47.6, 41.4], {s.i("p.product_id", "abv", 1, 6)})
                as decimal(5,2)) as abv,
            case p.bottle_size_ml when 50 then 120 when 350 then 12 when 1000 then 12 else 6 end
                as bottles_per_case,
            cast(round(bb.base_price * bb.price_factor * (p.bottle_size_ml / 700.0)
                * (1 + 1.5 * p.price_u), 2) as decimal(12,2)) as list_price_gbp,
            {s.u("p.product_id", "active")} > 0.08 as is_active,
            {now_sql} - to_minutes(cast({s.h("p.product_id", "upd")} % 525600 as bigint)) as updated_at,
            {s.loaded_at("p.product_id", now_sql)} as loaded_at
        from sized p
        join erp.brands b on b.brand_id = p.brand_id
        join _brands bb on bb.brand_id = p.brand_id
    """)

    con.execute(f"""
        insert into crm.distributors by name
        with base as (select cast(range + 1 as integer) as distributor_id from range({n_dist}))
        select
            distributor_id,
            {
        s.pick(
            "distributor_id",
            "pre",
            (
                "Atlas",
                "Highland",
                "Coastal",
                "Northern",
                "Premier",
                "Metro",
                "Crown",
                "Summit",
                "Pacific",
                "Harbour",
                "Meridian",
                "Thistle",
            ),
        )
    }
            || ' ' || {
        s.pick(
            "distributor_id",
            "suf",
            ("Beverages", "Wines & Spirits", "Drinks Co", "Trading", "Imports", "Distribution"),
        )
    }
            || ' ' || cast(distributor_id as varchar) as distributor_name,
            c.country_code,
            {s.pick("distributor_id", "chan", _CHANNELS)} as channel_code,
            {s.i("distributor_id", "rep", 1, n_reps)} as account_manager_id,
            cast(round(50 + {s.u("distributor_id", "credit")} * 950) * 1000 as decimal(14,2))
                as credit_limit_gbp,
            case
                when {s.u("distributor_id", "status")} < 0.88 then 'active'
                when {s.u("distributor_id", "status")} < 0.95 then 'on_hold'
                else 'inactive'
            end as status,
            {now_sql} - to_days(cast(365 + {s.h("distributor_id", "created")} % 2500 as integer))
                as created_at,
            {now_sql} - to_minutes(cast({s.h("distributor_id", "upd")} % 525600 as bigint)) as updated_at,
            {s.loaded_at("distributor_id", now_sql)} as loaded_at
        from base
        join _countries c on c.idx = {s.i("distributor_id", "country", 1, n_countries)}
    """)

    con.execute(f"""
        create temp table _orders as
        with base as (select range + 1 as order_id from range({counts["orders"]}))
        select
            order_id,
            {s.i("order_id", "dist", 1, n_dist)} as distributor_id,
            {today_sql} - {s.i("order_id", "odate", 0, HISTORY_DAYS - 1)} as order_date,
            {s.i("order_id", "lag", 1, 5)} as ship_lag_days,
            {s.i("order_id", "transit", 2, 14)} as transit_days,
            {s.i("order_id", "lines", 1, 5)} as n_lines,
            {s.u("order_id", "cancel")} < 0.03 as is_cancelled,
            {s.i("order_id", "hour", 0, 1439)} as created_minute
        from base
    """)
    con.execute(f"""
        insert into erp.orders by name
        select
            o.order_id,
            'SO-' || lpad(cast(o.order_id as varchar), 9, '0') as order_number,
            o.distributor_id,
            d.account_manager_id as sales_rep_id,
            o.order_date,
            o.order_date + {s.i("o.order_id", "req", 7, 21)} as requested_delivery_date,
            c.currency_code,
            case
                when o.is_cancelled then 'cancelled'
                when o.order_date + o.ship_lag_days > {today_sql} then 'open'
                when o.order_date + o.ship_lag_days + o.transit_days > {today_sql} then 'shipped'
                else 'delivered'
            end as status,
            least({now_sql}, cast(o.order_date as timestamp) + to_minutes(o.created_minute)) as created_at,
            least({now_sql}, cast(o.order_date as timestamp) + to_minutes(o.created_minute)
                + to_days(o.ship_lag_days + o.transit_days)) as updated_at,
            {s.loaded_at("o.order_id", now_sql)} as loaded_at
        from _orders o
        join crm.distributors d on d.distributor_id = o.distributor_id
        join _countries c on c.country_code = d.country_code
    """)

    con.execute(f"""
        insert into erp.order_lines by name
        with lines as (
            select o.order_id, l.line_number, c.units_per_gbp
            from _orders o
            join (select cast(range as integer) as line_number from range(1, 6)) l
                on l.line_number <= o.n_lines
            join erp.orders eo on eo.order_id = o.order_id
            join (select currency_code, min(units_per_gbp) as units_per_gbp from _countries
                group by currency_code) c on c.currency_code = eo.currency_code
        ), picked as (
            select *, {s.i("order_id, line_number", "prod", 1, n_products)} as product_id from lines
        )
        select
            pk.order_id * 10 + pk.line_number as order_line_id,
            pk.order_id,
            pk.line_number,
            pk.product_id,
            {s.i("pk.order_id, pk.line_number", "qty", 1, 40)} as quantity_cases,
            cast(round(p.list_price_gbp * p.bottles_per_case * 0.62 * pk.units_per_gbp
                * (0.95 + 0.1 * {s.u("pk.order_id, pk.line_number", "px")}), 2) as decimal(12,2))
                as unit_price,
            cast(case
                when {s.u("pk.order_id, pk.line_number", "disc")} < 0.7 then 0
                else list_element([2.5, 5.0, 7.5, 10.0], {s.i("pk.order_id, pk.line_number", "dpct", 1, 4)})
            end as decimal(5,2)) as discount_pct,
            {s.loaded_at("pk.order_id, pk.line_number", now_sql)} as loaded_at
        from picked pk
        join erp.products p on p.product_id = pk.product_id
    """)

    con.execute("""
        create temp table _order_totals as
        select
            order_id,
            cast(sum(quantity_cases) as integer) as cases,
            sum(quantity_cases * unit_price * (1 - discount_pct / 100)) as net_amount
        from erp.order_lines
        group by order_id
    """)

    con.execute(f"""
        insert into logistics.shipments by name
        select
            row_number() over (order by o.order_id) as shipment_id,
            o.order_id,
            c.warehouse_id,
            {s.pick("o.order_id", "carrier", ("DHL", "Maersk", "Kuehne+Nagel", "DB Schenker", "DSV"))}
                as carrier,
            t.cases as cases_shipped,
            cast(o.order_date + x.ship_lag_days as timestamp)
                + to_minutes({s.i("o.order_id", "sh", 360, 1080)}) as shipped_at,
            case when o.status = 'delivered' then
                cast(o.order_date + x.ship_lag_days + x.transit_days as timestamp)
                + to_minutes({s.i("o.order_id", "dl", 420, 1020)})
            end as delivered_at,
            case when o.status = 'delivered' then 'delivered' else 'in_transit' end as status,
            cast(round(t.cases * (2 + 3 * {s.u("o.order_id", "freight")}), 2) as decimal(12,2))
                as freight_cost_gbp,
            {s.loaded_at("o.order_id", now_sql)} as loaded_at
        from erp.orders o
        join _orders x on x.order_id = o.order_id
        join _order_totals t on t.order_id = o.order_id
        join crm.distributors d on d.distributor_id = o.distributor_id
        join _countries c on c.country_code = d.country_code
        where o.status in ('shipped', 'delivered')
    """)

    con.execute(f"""
        insert into finance.invoices by name
        select
            sh.shipment_id as invoice_id,
            'INV-' || lpad(cast(sh.shipment_id as varchar), 9, '0') as invoice_number,
            o.order_id,
            cast(sh.shipped_at as date) as invoice_date,
            cast(sh.shipped_at as date) + cast(list_element([30, 45, 60], {s.i("o.order_id", "terms", 1, 3)})
                as integer) as due_date,
            o.currency_code,
            cast(round(t.net_amount, 2) as decimal(16,2)) as amount,
            {s.loaded_at("sh.shipment_id", now_sql)} as loaded_at
        from logistics.shipments sh
        join erp.orders o on o.order_id = sh.order_id
        join _order_totals t on t.order_id = o.order_id
    """)

    con.execute(f"""
        insert into finance.payments by name
        with candidates as (
            select
                i.invoice_id,
                i.invoice_date + {s.i("i.invoice_id", "paylag", 5, 75)} as payment_date,
                case when {s.u("i.invoice_id", "partial")} < 0.05 then round(i.amount / 2, 2)
                    else i.amount end as amount,
                {s.u("i.invoice_id", "paid")} as paid_u
            from finance.invoices i
        )
        select
            row_number() over (order by invoice_id) as payment_id,
            invoice_id,
            payment_date,
            cast(amount as decimal(16,2)) as amount,
            {s.pick("invoice_id", "method", ("bank_transfer", "direct_debit", "letter_of_credit"))}
                as payment_method,
            {s.loaded_at("invoice_id", now_sql)} as loaded_at
        from candidates
        where paid_u < 0.92 and payment_date <= {today_sql}
    """)

    con.execute(f"""
        insert into logistics.depletions by name
        with base as (
            select range + 1 as depletion_id from range({counts["depletions"]})
        ), drawn as (
            select
                depletion_id,
                {s.i("depletion_id", "dist", 1, n_dist)} as distributor_id,
                {s.i("depletion_id", "prod", 1, n_products)} as product_id,
                {today_sql} - {s.i("depletion_id", "ddate", 1, HISTORY_DAYS)} as depletion_date,
                {s.u("depletion_id", "cases")} as cases_u
            from base
        )
        select
            depletion_id,
            distributor_id,
            product_id,
            depletion_date,
            {
        s.pick(
            "depletion_id",
            "outlet",
            ("supermarket", "bar", "restaurant", "hotel", "specialist", "online", "duty_free"),
        )
    } as outlet_type,
            cast(round(0.5 + cases_u * cases_u * 30, 2) as decimal(10,2)) as cases_depleted,
            least({now_sql}, cast(depletion_date as timestamp)
                + to_minutes({s.i("depletion_id", "rep", 1440, 10080)})) as reported_at,
            {s.loaded_at("depletion_id", now_sql)} as loaded_at
        from drawn
    """)

    con.execute(f"""
        insert into finance.fx_rates by name
        with days as (
            select cast(range as integer) as day_offset from range(0, {HISTORY_DAYS + 1})
        ), currencies as (
            select currency_code, min(units_per_gbp) as base_rate, min(idx) as k
            from _countries group by currency_code
        )
        select
            {today_sql} - d.day_offset as rate_date,
            c.currency_code,
            cast(case when c.currency_code = 'GBP' then 1 else round(c.base_rate
                * (1 + 0.04 * sin(d.day_offset / 23.0 + c.k)
                + 0.01 * ({s.u("d.day_offset, c.currency_code", "fx")} - 0.5)), 6) end as decimal(18,6))
                as units_per_gbp,
            'ECB reference' as rate_source,
            {s.loaded_at("d.day_offset, c.currency_code", now_sql)} as loaded_at
        from days d cross join currencies c
    """)

    # scale budgets with the data so variances stay meaningful
    con.execute(f"""
        insert into finance.budgets by name
        with months as (
            select date_trunc('month', {today_sql}) - to_months(cast(range as integer)) as m
            from range(0, 13)
        ), grid as (
            select cast(m.m as date) as budget_month, b.brand_id, r.region_code, b.base_price
            from months m
            cross join _brands b
            cross join (select unnest({list(REGIONS)}) as region_code) r
        )
        select
            cast(row_number() over (order by budget_month, brand_id, region_code) as integer) as budget_id,
            budget_month,
            cast(year(budget_month) as integer) as fiscal_year,
            brand_id,
            region_code,
            cast(round((5 + 25 * {s.u("epoch(budget_month), brand_id, region_code", "bc")}) * {scale}, 2)
                as decimal(14,2)) as budget_cases,
            cast(round((5 + 25 * {s.u("epoch(budget_month), brand_id, region_code", "bc")}) * {scale}
                * base_price * 6 * 0.62, 2) as decimal(16,2)) as budget_net_revenue_gbp,
            'FY' || cast(year(budget_month) as varchar) || '-B1' as budget_version,
            {s.loaded_at("epoch(budget_month), brand_id, region_code", now_sql)} as loaded_at
        from grid
    """)


def generate(
    base_dir: Path | None = None,
    scale: float = 1.0,
    seed: int = 42,
    now: datetime | None = None,
) -> GenerationResult:
    """(Re)create ``<base_dir>/raw.duckdb`` with every source table of the tenant's dbt project.

    ``scale`` multiplies the transactional volumes (1.0 is a few thousand rows, 1000 is
    millions); ``seed`` and ``now`` make the output reproducible. The database is built in a
    temporary file beside the target and moved into place atomically.
    """
    if not scale > 0 or math.isinf(scale):
        raise ValueError("scale must be a positive finite number")
    moment = _normalise_now(now)
    directory = base_dir if base_dir is not None else warehouse_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final_path = database_path(RAW_DB, directory)
    tmp_path = directory / f".{RAW_DB}.{os.getpid()}.tmp.duckdb"
    for stale in (tmp_path, Path(f"{tmp_path}.wal")):
        stale.unlink(missing_ok=True)

    rng = random.Random(seed)
    counts = _counts(scale)
    row_counts: dict[str, int] = {}
    try:
        con = duckdb.connect(str(tmp_path))
        try:
            con.execute("set threads to 2")
            _create_tables(con)
            _load_reference(con, rng, moment, counts["sales_reps"])
            _load_generated(con, _Sql(seed), moment, counts, scale)
            for name in SOURCE_TABLES:
                result = con.execute(f"select count(*) from {name}").fetchone()
                row_counts[name] = int(result[0]) if result else 0
            con.execute("checkpoint")
        finally:
            con.close()
        os.replace(tmp_path, final_path)
        Path(f"{final_path}.wal").unlink(missing_ok=True)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)
        raise
    return GenerationResult(
        raw_db_path=final_path,
        row_counts=MappingProxyType(row_counts),
        seed=seed,
        scale=scale,
        now=moment,
        tables=tuple(SOURCE_TABLES),
    )
