"""Usage metering's pure parts: the report's range, folding rows into days and totals, the daily
quota's reset time and its place among a client's limits, the CLI's table, and the SDK's model of
the report."""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgspec
import pytest

from cli.output import usage_lines
from infra.policy import ClientPolicy, client_limits, daily_pixels, limits_with_spend, quota_resets_in
from infra.repo.usage import MAX_REPORT_DAYS, RangeError, SpentToday, build_report, report_range
from infra.settings import load_settings

TODAY = date(2026, 11, 24)


def test_the_range_defaults_to_the_last_30_days() -> None:
    assert report_range(None, None, today=TODAY) == (date(2026, 10, 26), TODAY)
    assert report_range(None, "2026-01-31", today=TODAY) == (date(2026, 1, 2), date(2026, 1, 31))
    assert report_range("2026-11-01", None, today=TODAY) == (date(2026, 11, 1), TODAY)
    assert report_range("2026-11-24", "2026-11-24", today=TODAY) == (TODAY, TODAY)  # one day
    assert report_range("2024-01-01", "2024-12-31") == (date(2024, 1, 1), date(2024, 12, 31))  # 366 days


@pytest.mark.parametrize(
    ("start", "end", "field", "words"),
    [
        ("2026-02-30", None, "from", "YYYY-MM-DD"),
        (None, "24.11.2026", "to", "YYYY-MM-DD"),
        ("2026-11-24T00:00:00Z", None, "from", "YYYY-MM-DD"),
        ("2026-11-02", "2026-11-01", "from", "after `to`"),
        ("2024-01-01", "2025-01-01", "from", f"at most {MAX_REPORT_DAYS} days"),
    ],
)
def test_a_bad_range_names_its_field(start: str | None, end: str | None, field: str, words: str) -> None:
    with pytest.raises(RangeError) as err:
        report_range(start, end, today=TODAY)
    assert err.value.field == field and words in err.value.message


def _jobs(day: date, **counts: object) -> dict[str, object]:
    row = {"day": day, "jobs": 0, "succeeded": 0, "failed": 0, "canceled": 0, "source_pixels": 0,
           "engine_cpu_seconds": 0.0}  # fmt: skip
    return row | counts


def test_rows_fold_into_days_and_a_total() -> None:
    d1, d2, d3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
    report = build_report(
        d1,
        d3,
        jobs=[_jobs(d2, jobs=3, succeeded=2, failed=1, source_pixels=1_920_000, engine_cpu_seconds=0.12345),
              _jobs(d1, jobs=1, canceled=1)],
        outputs=[{"day": d2, "format": "webp", "bytes": 100}, {"day": d2, "format": "jpeg", "bytes": 50},
                 {"day": d1, "format": "webp", "bytes": 7}],
        hooks=[{"day": d3, "attempts": 4, "delivered": 1}],  # an attempt on a later day than its job
    )  # fmt: skip
    assert [d.day for d in report.days] == [d1, d2, d3]  # oldest first
    second = report.days[1]
    assert (second.jobs, second.succeeded, second.failed, second.canceled) == (3, 2, 1, 0)
    assert (second.source_megapixels, second.engine_cpu_seconds) == (1.92, 0.123)
    assert second.output_bytes == {"jpeg": 50, "webp": 100} and list(second.output_bytes) == ["jpeg", "webp"]
    assert second.output_bytes_total == 150
    assert (report.days[2].jobs, report.days[2].webhook_attempts, report.days[2].webhooks_delivered) == (0, 4, 1)
    total = report.total
    assert (total.jobs, total.succeeded, total.failed, total.canceled) == (4, 2, 1, 1)
    assert total.output_bytes == {"jpeg": 50, "webp": 107} and total.output_bytes_total == 157
    assert (total.webhook_attempts, total.webhooks_delivered) == (4, 1)
    wire = msgspec.json.decode(msgspec.json.encode(report))
    assert (wire["from"], wire["to"]) == ("2026-11-01", "2026-11-03")  # the query's names


def test_failures_fold_by_code_and_deadline_kills_stand_out() -> None:
    d1, d2 = date(2026, 11, 1), date(2026, 11, 2)
    report = build_report(
        d1,
        d2,
        jobs=[_jobs(d1, jobs=3, failed=3, engine_cpu_seconds=9.5), _jobs(d2, jobs=2, failed=1, succeeded=1,
              engine_cpu_seconds=4.25)],
        outputs=[],
        hooks=[],
        failures=[{"day": d1, "code": "deadline_exceeded", "jobs": 2, "engine_cpu_seconds": 9.0},
                  {"day": d1, "code": "out_of_memory", "jobs": 1, "engine_cpu_seconds": 0.5},
                  {"day": d2, "code": "deadline_exceeded", "jobs": 1, "engine_cpu_seconds": 4.0}],
    )  # fmt: skip
    first, second = report.days
    assert first.failed_by_code == {"deadline_exceeded": 2, "out_of_memory": 1}
    assert (first.deadline_exceeded, first.deadline_exceeded_cpu_seconds, first.engine_cpu_seconds) == (2, 9.0, 9.5)
    assert (second.deadline_exceeded, second.deadline_exceeded_cpu_seconds) == (1, 4.0)
    total = report.total
    assert total.failed_by_code == {"deadline_exceeded": 3, "out_of_memory": 1}
    assert (total.deadline_exceeded, total.deadline_exceeded_cpu_seconds, total.engine_cpu_seconds) == (3, 13.0, 13.75)


def test_url_renders_are_told_apart_and_hits_fold_by_day() -> None:
    d1, d2 = date(2026, 11, 1), date(2026, 11, 2)
    report = build_report(
        d1,
        d2,
        jobs=[_jobs(d1, jobs=3, succeeded=3, source_pixels=3_000_000, engine_cpu_seconds=1.5, url_renders=2,
                    url_source_pixels=1_000_000, url_cpu_seconds=0.25)],
        outputs=[],
        hooks=[],
        served=[{"day": d1, "cache_hits": 9, "bytes_served": 12_345}, {"day": d2, "cache_hits": 4, "bytes_served": 0}],
    )  # fmt: skip
    first, second = report.days
    assert (first.jobs, first.url_renders, first.url_render_source_megapixels, first.url_render_cpu_seconds) == (
        3, 2, 1.0, 0.25)  # fmt: skip
    assert (first.url_cache_hits, first.url_bytes_served) == (9, 12_345)
    assert (second.jobs, second.url_cache_hits, second.url_bytes_served) == (0, 4, 0)  # a day of 304s only
    assert (report.total.url_renders, report.total.url_cache_hits, report.total.url_bytes_served) == (2, 13, 12_345)


def test_an_empty_range_is_zeros() -> None:
    report = build_report(TODAY, TODAY, [], [], [])
    assert report.days == [] and report.total.jobs == 0 and report.total.output_bytes == {}


def test_the_quota_resets_at_midnight_utc() -> None:
    assert quota_resets_in(datetime(2026, 11, 24, 0, 0, tzinfo=UTC)) == 86_400
    assert quota_resets_in(datetime(2026, 11, 24, 23, 0, tzinfo=UTC)) == 3_600
    assert quota_resets_in(datetime(2026, 11, 24, 23, 59, 59, 500_000, tzinfo=UTC)) == 1  # rounded up, never 0
    assert quota_resets_in(datetime(2024, 2, 28, 12, tzinfo=UTC)) == 43_200  # month ends need no care


def test_a_clients_quota_overrides_the_global_one() -> None:
    unlimited = load_settings({})
    assert client_limits(unlimited, ClientPolicy()).daily_source_megapixels is None
    assert daily_pixels(client_limits(unlimited, ClientPolicy())) is None
    settings = load_settings({"PIXELFLOW_DAILY_SOURCE_MEGAPIXELS": "500"})
    own = client_limits(settings, ClientPolicy(daily_source_megapixels=20))
    assert (own.daily_source_megapixels, own.overridden) == (20, ["daily_source_megapixels"])
    assert daily_pixels(own) == 20_000_000
    assert client_limits(settings, ClientPolicy()).daily_source_megapixels == 500
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"daily_source_megapixels": 0}, ClientPolicy)


def test_the_cpu_quota_is_global_or_the_clients_own() -> None:
    assert client_limits(load_settings({}), ClientPolicy()).daily_engine_cpu_seconds is None
    settings = load_settings({"PIXELFLOW_DAILY_ENGINE_CPU_SECONDS": "3600"})
    assert client_limits(settings, ClientPolicy()).daily_engine_cpu_seconds == 3600
    own = client_limits(settings, ClientPolicy(daily_engine_cpu_seconds=60))
    assert (own.daily_engine_cpu_seconds, own.overridden) == (60, ["daily_engine_cpu_seconds"])
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"daily_engine_cpu_seconds": 0}, ClientPolicy)
    today = limits_with_spend(own, SpentToday(source_pixels=1_500_000, cpu_seconds=61.23456, deadline_exceeded=4))
    assert (today.source_megapixels_today, today.engine_cpu_seconds_today, today.deadline_exceeded_today) == (
        1.5, 61.235, 4)  # fmt: skip


def test_the_cli_table_has_a_line_per_day_and_the_total() -> None:
    d = date(2026, 11, 2)
    report = build_report(
        d, d, [_jobs(d, jobs=2, succeeded=2, source_pixels=3_000_000, engine_cpu_seconds=1.25)],
        [{"day": d, "format": "png", "bytes": 1_234_567}], [{"day": d, "attempts": 3, "delivered": 2}],
    )  # fmt: skip
    title, header, day, total = usage_lines("acme", report)
    assert title == "acme: 2026-11-02 to 2026-11-02 (UTC days)" and header.split()[0] == "day"
    assert day.split() == ["2026-11-02", "2", "2", "0", "0", "0", "3.00", "1,234,567", "1.2", "3", "0", "0", "0"]
    assert total.split()[0] == "total" and total.split()[1:] == day.split()[1:]


def test_the_sdk_reads_every_field_of_the_report() -> None:
    from pixelflow_client.models import Usage

    d = date(2026, 11, 2)
    report = build_report(d, d, [_jobs(d, jobs=2, succeeded=1, failed=1, source_pixels=10, engine_cpu_seconds=3.0)],
                          [{"day": d, "format": "avif", "bytes": 9}], [],
                          [{"day": d, "code": "deadline_exceeded", "jobs": 1, "engine_cpu_seconds": 2.5}])  # fmt: skip
    wire = msgspec.json.encode(report)
    sdk = msgspec.json.decode(wire, type=Usage)
    assert msgspec.json.decode(msgspec.json.encode(sdk)) == msgspec.json.decode(wire)
