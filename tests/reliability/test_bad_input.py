"""Bad input from a corpus: each item gets a clear error, valid data around it is kept, nothing half-written.

The corpus (``tests/reliability/corpus``) holds malformed CSV and JSON Lines rows, invalid phones,
emails, dates and time zones, hostile segment filters and broken policy files. Huge fields,
invalid UTF-8 and absurd nesting are generated here, so the corpus stays readable text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from orchestrator.customer_import import CustomerImportError, ImportReport, import_customers
from orchestrator.db import session_scope
from orchestrator.models import ContactPreference, Customer, Message
from orchestrator.policy import Intent, PolicyError, load_policy, reserve_chunk
from orchestrator.segments import SegmentError, compile_filter, load_segments
from orchestrator.templating import build_context, render
from tests.reliability.workers import OUTAGE_FACTS

CORPUS = Path(__file__).parent / "corpus"
INJECTION = "{{ 7*7 }} {% for x in range(3) %}loop{% endfor %} {{ ''.__class__.__mro__ }}"
# line -> the field the report must name ("" for a row that is not a record at all)
CSV_REJECTED = {3: "email", 4: "phone", 5: "country", 6: "timezone", 7: "timezone", 8: "customer_since",
                9: "preferred_channels", 10: "quiet_end", 11: "attributes", 12: "attributes", 13: "",
                15: "external_id", 16: "external_id", 18: ""}
JSONL_REJECTED = {2: "email", 3: "", 4: "", 5: "timezone", 6: "external_id", 7: "phone", 8: "name", 10: "",
                  11: ""}


def _customers() -> dict[str, Customer]:
    with session_scope() as s:
        return {c.external_id: c for c in s.exec(select(Customer)).scalars()}  # type: ignore[call-overload]


def _rejected(report: ImportReport) -> dict[int, str]:
    assert all(r.reason.strip() for r in report.rejected)  # every rejection says why
    return {r.line: r.field for r in report.rejected}


def test_bad_customer_rows_are_reported_by_line_and_the_good_ones_imported(db_url, tmp_path, figure):
    csv_report = import_customers(CORPUS / "customers.csv")

    generated = tmp_path / "generated.csv"
    generated.write_bytes(
        b"external_id,name,email\n"
        b"g-ok,Hedy,hedy@example.com\n"
        + b"g-huge," + b"x" * 200_000 + b",huge@example.com\n"
        + b"g-bytes,Caf\xe9 \xff\xfe,bytes@example.com\n"
        + b"g-long-email,Ho," + b"a" * 400 + b"@example.com\n"
        b"g-ok-2,Lise,lise@example.com\n"
    )
    generated_report = import_customers(generated)

    jsonl = tmp_path / "customers.jsonl"
    deep = "[" * 50_000 + "]" * 50_000
    jsonl.write_bytes((CORPUS / "customers.jsonl").read_bytes()
                      + f'{{"external_id": "j-deep", "attributes": {{"x": {deep}}}}}\n'.encode()
                      + b'{"external_id": "j-bytes", "name": "\xff\xfe"}\n')
    jsonl_report = import_customers(jsonl)

    assert _rejected(csv_report) == CSV_REJECTED
    assert _rejected(generated_report) == {3: "name", 4: "name", 5: "email"}
    assert _rejected(jsonl_report) == JSONL_REJECTED
    kept = _customers()
    assert sorted(kept) == ["g-ok", "g-ok-2", "j-ok", "j-ok-2", "ok-1", "ok-3", "ok-inject"]
    assert kept["ok-1"].name == "Ada Lovelace" and kept["ok-1"].attributes == {"plan": "growth"}
    assert kept["ok-3"].phone == "+442079460018" and kept["ok-3"].name == 'Quoted, with "comma"'
    assert kept["j-ok-2"].attributes == {"plan": "scale"}
    with session_scope() as s:  # nothing of a rejected row was written anywhere
        preferences = s.exec(select(ContactPreference)).scalars().all()  # type: ignore[call-overload]
    assert [p.customer_id for p in preferences] == [kept["ok-1"].id]

    reports = (csv_report, generated_report, jsonl_report)
    rejected = sum(len(r.rejected) for r in reports)
    figure("bad input (customers)", f"{rejected} bad rows in CSV and JSON Lines (formats, emails, phones, "
           f"time zones, dates, huge fields, invalid UTF-8, nesting) each rejected with line and reason; "
           f"{len(kept)} valid rows around them imported; 0 crashes")


def test_customer_data_that_looks_like_a_template_is_printed_not_run(sqlite_url):
    import_customers(CORPUS / "customers.csv")
    customer = _customers()["ok-inject"]
    facts = {**OUTAGE_FACTS, "affected": "{{ config }} {% include '/etc/passwd' %}"}
    context = build_context(customer, facts, topic="outage", message_id=1)

    email = render("outage_notice", tone="empathetic", channel="email", context=context, locale="en")
    sms = render("outage_notice", tone="empathetic", channel="sms", context=context, locale="en")

    for text in (email.text, sms.text):
        assert "{{ config }} {% include '/etc/passwd' %}" in text  # the facts, verbatim
        assert "root:" not in text
    assert email.text.startswith("Hi {{,")  # the first word of the customer's name, verbatim
    words = re.sub(r"https?://\S+", "", email.text)  # a signed link may hold "49" by chance
    assert "49" not in words and "loop loop" not in words and "class 'object'" not in words
    assert "{{ config }} {% include &#39;/etc/passwd&#39; %}" in (email.html or "")  # escaped in HTML


@pytest.mark.parametrize("path", sorted((CORPUS / "segments").glob("*.yaml")), ids=lambda p: p.stem)
def test_a_hostile_or_broken_segments_file_is_refused_with_its_name(sqlite_url, path):
    with pytest.raises(SegmentError) as refused:
        load_segments(path)
    assert path.name in str(refused.value) or "evil" in str(refused.value) or "'all'" in str(refused.value)


def test_hostile_filters_never_reach_the_database_as_sql(db_url, tmp_path, figure):
    import_customers(CORPUS / "customers.csv")
    before = len(_customers())
    deep: dict = {"tier": {"equals": "standard"}}
    for _ in range(10_000):
        deep = {"not": deep}
    bad_files = sorted((CORPUS / "segments").glob("*.yaml"))
    nested = tmp_path / "nested.yaml"
    nested.write_text("segments:\n  deep:\n    filter: " + "{not: " * 2_000 + "{}" + "}" * 2_000 + "\n")
    invalid = tmp_path / "bytes.yaml"
    invalid.write_bytes(b"segments:\n  a:\n    filter: {name: {equals: \xff}}\n")
    refused = 0
    for path in [*bad_files, nested, invalid]:
        with pytest.raises(SegmentError):
            load_segments(path)
        refused += 1
    with pytest.raises(SegmentError, match="nested deeper than"):
        compile_filter(deep)
    refused += 1

    with session_scope() as s:
        for value in ("x' OR '1'='1", "'; DROP TABLE customer; --", "%", "\\"):
            found = s.execute(select(func.count()).select_from(Customer.__table__)
                              .where(compile_filter({"name": {"equals": value}}))).scalar_one()
            assert found == 0
    assert len(_customers()) == before
    figure("bad input (segments)", f"{refused} hostile or broken segment definitions (SQL in names, raw SQL "
           "operators, python objects, 10,000-level nesting, invalid UTF-8) refused with a SegmentError; "
           "injected values bound as parameters, 0 rows matched or changed")


@pytest.mark.parametrize("path", sorted((CORPUS / "policies").glob("*.yaml")), ids=lambda p: p.stem)
def test_a_broken_policy_file_is_a_policy_error_naming_the_file(path):
    with pytest.raises(PolicyError, match=path.name):
        load_policy(path)


def test_a_broken_policy_or_bad_intent_writes_nothing(db_url, tmp_path, figure):
    import_customers(CORPUS / "customers.csv")
    ids = [c.id for c in _customers().values()]
    invalid = tmp_path / "bytes.yaml"
    invalid.write_bytes(b"topics:\n  marketing: {priority: \xff}\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("topics: " + "[" * 5_000 + "]" * 5_000 + "\n")
    broken = [*sorted((CORPUS / "policies").glob("*.yaml")), invalid, nested]
    for path in broken:
        with pytest.raises(PolicyError):
            load_policy(path)

    good = [Intent(customer_id=cid, topic="outage", template="outage_notice", dedupe_key="inc-1", data={})
            for cid in ids]
    bad_chunks = [
        [*good, Intent(customer_id=ids[0], topic="gossip", template="t", dedupe_key="inc-1")],
        [*good, Intent(customer_id=ids[0], topic="outage", template="t", dedupe_key="")],
        [*good, Intent(customer_id=ids[0], topic="outage", template="t", dedupe_key="k", channels=["fax"])],
        [*good, Intent(customer_id=ids[0], topic="outage", template="t", dedupe_key="k", send_time="25:99")],
    ]
    policy = load_policy()
    for chunk in bad_chunks:
        with pytest.raises((PolicyError, ValueError)):
            reserve_chunk(chunk, policy=policy)
    with session_scope() as s:
        assert s.execute(select(func.count()).select_from(Message.__table__)).scalar_one() == 0
    figure("bad input (policy)", f"{len(broken)} broken policy files refused with a PolicyError naming the "
           f"file; {len(bad_chunks)} chunks with one bad intent refused whole, 0 ledger rows half-written")


def test_a_stored_customer_with_an_unknown_time_zone_does_not_stop_the_chunk(sqlite_url):
    with session_scope() as s:
        s.add_all([Customer(external_id="tz-bad", email="tz@example.com", timezone="Mars/Olympus_Mons"),
                   Customer(external_id="tz-ok", email="ok@example.com", timezone="Europe/Paris")])
    ids = [c.id for c in _customers().values()]
    result = reserve_chunk([Intent(customer_id=cid, topic="outage", template="outage_notice",
                                   dedupe_key="inc-2", data=OUTAGE_FACTS) for cid in ids])
    assert sorted(r.status for r in result.rows) == ["planned", "planned"]


def test_corpus_files_are_what_they_claim():
    """The corpus keeps its hostile content (a reformatting tool must not 'fix' it)."""
    assert '"unterminated' in (CORPUS / "customers.csv").read_text()
    lines = (CORPUS / "customers.jsonl").read_text().splitlines()
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[3])
    assert yaml.safe_load((CORPUS / "policies" / "list_at_top.yaml").read_text()) == ["marketing", "outage"]


def test_values_a_database_cannot_store_reject_their_row_on_sqlite_and_postgresql(db_url, tmp_path, figure):
    # PostgreSQL refuses a NUL in text and JSON; an unpaired surrogate is not text; NaN is not JSON.
    # One such row used to fail its whole chunk on PostgreSQL: now it is rejected alone, on both.
    csv_file = tmp_path / "nul.csv"
    csv_file.write_bytes(
        b"external_id,name,email,attr.note,attributes\n"
        b"n-ok-1,Ada,ada@example.com,,\n"
        b"n-name,Nul\x00Byte,nul@example.com,,\n"
        b"n-attr,Bo,bo@example.com,before\x00after,\n"
        b'n-json,Cy,cy@example.com,,"{""note"": ""a\\u0000b""}"\n'
        b'n-nan,Di,di@example.com,,"{""score"": NaN}"\n'
        b"n-id\x00,Ed,ed@example.com,,\n"
        b"n-ok-2,Flo,flo@example.com,,\n"
    )
    jsonl_file = tmp_path / "nul.jsonl"
    jsonl_file.write_text("\n".join([
        '{"external_id": "j-ok-1", "name": "Grace"}',
        '{"external_id": "j-name", "name": "a\\u0000b"}',
        '{"external_id": "j-surrogate", "name": "half \\ud800 a pair"}',
        '{"external_id": "j-nested", "attributes": {"tags": ["ok", {"deep": "x\\u0000"}]}}',
        '{"external_id": "j-key", "attributes": {"ok": {"bad\\u0000key": 1}}}',
        '{"external_id": "j-inf", "attributes": {"score": Infinity}}',
        '{"external_id": "j-ok-2", "name": "Hedy", "attributes": {"score": 1.5}}',
    ]) + "\n", encoding="utf-8")

    csv_report = import_customers(csv_file)
    jsonl_report = import_customers(jsonl_file)

    assert _rejected(csv_report) == {3: "name", 4: "attr.note", 5: "attributes", 6: "attributes",
                                     7: "external_id"}
    assert _rejected(jsonl_report) == {2: "name", 3: "name", 4: "attributes", 5: "attributes",
                                       6: "attributes"}
    assert "NUL" in next(r.reason for r in csv_report.rejected if r.line == 3)
    assert sorted(_customers()) == ["j-ok-1", "j-ok-2", "n-ok-1", "n-ok-2"]
    assert (csv_report.imported, jsonl_report.imported) == (2, 2)
    rejected = len(csv_report.rejected) + len(jsonl_report.rejected)
    figure("bad input (unstorable values)", f"{rejected} rows with a NUL byte, an unpaired surrogate or "
           "NaN/Infinity (in a field, an attribute, nested JSON or a key) rejected with line and field "
           "on SQLite and PostgreSQL; the 4 good rows around them imported")


class _CountedName(str):
    """A column name that counts how often it is compared with another one."""

    comparisons = 0
    limit = 1_000_000  # ten per column of the header below: a quadratic check stops here, failing

    def __eq__(self, other: object) -> bool:
        _CountedName.comparisons += 1
        assert _CountedName.comparisons <= _CountedName.limit, "column names compared pairwise"
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_header_of_100000_columns_is_checked_in_linear_time(sqlite_url, tmp_path, monkeypatch, figure):
    import orchestrator.customer_import.read as reading

    width = 100_000
    wide = tmp_path / "wide.csv"
    names = ["external_id", "name", *(f"extra_{i}" for i in range(width - 2))]
    wide.write_text(",".join(names) + "\n" + ",".join(["w-1", "Wide", *[""] * (width - 2)]) + "\n")
    real = reading.column_name
    monkeypatch.setattr(reading, "column_name", lambda raw: _CountedName(real(raw)))
    _CountedName.comparisons = 0

    report = import_customers(wide)

    assert report.imported == 1 and report.rejected == []
    # one look at each name (a quadratic check made 5 billion comparisons here)
    assert _CountedName.comparisons <= 10 * width
    assert len(report.warnings) == 1 and report.warnings[0].endswith(f"and {width - 2 - 20} more")
    repeated = tmp_path / "repeated.csv"
    repeated.write_text(",".join(["external_id", *(["dup"] * 1000)]) + "\n")
    with pytest.raises(CustomerImportError, match="more than once in the header: dup$"):
        import_customers(repeated)
    figure("bad input (wide header)", f"a CSV header of {width:,} columns checked with "
           f"{_CountedName.comparisons:,} name comparisons (linear) and reported in one short warning")


def test_a_segments_file_that_expands_through_aliases_is_refused_before_compiling(
        sqlite_url, monkeypatch, figure):
    import orchestrator.segments.filters as segments

    compiled = 0
    real = segments._Compiler.entry

    def counted(self, key, value, path):
        nonlocal compiled
        compiled += 1
        assert compiled <= segments.MAX_FILTER_CONDITIONS, "compiling a filter that expands without end"
        return real(self, key, value, path)

    monkeypatch.setattr(segments._Compiler, "entry", counted)
    for name in ("alias_bomb", "self_reference"):
        with pytest.raises(SegmentError, match=f"{name}.yaml.*(more than 2000 conditions|nested deeper)"):
            load_segments(CORPUS / "segments" / f"{name}.yaml")
    assert compiled == 0
    figure("bad input (YAML aliases)", "a 12-line segments file expanding through YAML aliases to 10^9 "
           f"conditions, and one containing itself, refused before compiling (limit "
           f"{segments.MAX_FILTER_CONDITIONS:,} conditions)")
