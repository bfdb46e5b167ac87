import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestrator.consent import current_consent
from orchestrator.customer_import import CustomerImportError, import_customers
from orchestrator.customer_import import run as import_run
from orchestrator.db import session_scope
from orchestrator.models import ConsentEvent, ContactPreference, Customer, PreferenceEvent
from orchestrator.validation import normalise_locale, normalise_phone, typed_attribute
from samples.generate import write_bulk_csv

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def count(model) -> int:
    with session_scope() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def customer(external_id: str) -> Customer:
    with session_scope() as s:
        return s.exec(select(Customer).where(Customer.external_id == external_id)).scalars().one()


def rejected(report) -> dict[int, str]:
    return {r.line: r.field for r in report.rejected}


def test_sample_files_import_and_jsonl_rendering_changes_nothing(db_url):
    first = import_customers(SAMPLES / "customers.csv")
    assert (first.imported, first.updated, first.rejected, first.warnings) == (300, 0, [], [])
    events = count(ConsentEvent), count(PreferenceEvent)
    second = import_customers(SAMPLES / "customers.jsonl")
    assert (second.imported, second.updated, second.unchanged, second.rejected) == (0, 0, 40, [])
    assert (count(ConsentEvent), count(PreferenceEvent)) == events
    kathmandu = [c for c in _all_customers() if c.timezone == "Asia/Kathmandu"]
    assert kathmandu and all(c.phone is None or c.phone.startswith("+977") for c in kathmandu)


def _all_customers() -> list[Customer]:
    with session_scope() as s:
        return list(s.exec(select(Customer)).scalars())


def test_every_kind_of_bad_row_is_reported_with_its_line_and_field(sqlite_url):
    report = import_customers(SAMPLES / "bad_customers.csv")
    assert report.imported == 2
    assert rejected(report) == {
        3: "phone", 4: "email", 5: "timezone", 6: "customer_since", 7: "customer_since",
        8: "external_id", 9: "external_id", 10: "name", 11: "frequency", 12: "quiet_start",
        13: "quiet_end", 14: "sms_opt_in", 15: "preferred_channels", 16: "locale", 17: "country",
        18: "x_handle", 19: "attributes", 21: "",
    }  # fmt: skip
    reasons = {r.line: r.reason for r in report.rejected}
    assert "already imported from line 2" in reasons[9]
    assert "250 characters" in reasons[10]
    assert any("favourite_colour" in w for w in report.warnings)
    assert {c.external_id for c in _all_customers()} == {"bad-demo-ok-1", "bad-demo-ok-2"}
    assert customer("bad-demo-ok-2").phone == "+447400123456"  # national number read as GB


def test_reimport_changes_nothing_and_a_changed_value_records_one_event(db_url, tmp_path):
    header = "external_id,name,sms_opt_in,marketing_opt_in,frequency,quiet_start,quiet_end,attr.nps\n"
    path = write(tmp_path / "c.csv", header + "a,Ann,yes,no,weekly,22:00,07:00,9\nb,Bo,no,,,,,\n")
    first = import_customers(path)
    assert (first.imported, first.updated) == (2, 0)
    stamp = customer("a").updated_at
    second = import_customers(path)
    assert (second.imported, second.updated, second.unchanged, second.rejected) == (0, 0, 2, [])
    assert (count(ConsentEvent), count(PreferenceEvent)) == (3, 1)
    assert customer("a").updated_at == stamp

    write(path, header + "a,Ann,no,no,weekly,22:00,07:00,9\nb,Bo,no,,,,,\n")
    third = import_customers(path)
    assert (third.updated, third.unchanged) == (1, 1)
    assert count(ConsentEvent) == 4
    with session_scope() as s:
        consent = current_consent(s, [customer("a").id])
    assert consent[(customer("a").id, "sms", "*")] == "opted_out"


def test_blank_values_and_absent_columns_keep_what_is_stored(sqlite_url, tmp_path):
    full = "external_id,name,email,tier,frequency,attr.region,attr.plan\n"
    full += "c1,Ann,ann@example.com,premium,weekly,eu-west,scale\n"
    import_customers(write(tmp_path / "full.csv", full))
    part = "external_id,email,tier,attr.region\nc1,,plus,us-east\n"
    report = import_customers(write(tmp_path / "part.csv", part))
    assert (report.imported, report.updated) == (0, 1)
    stored = customer("c1")
    assert (stored.name, stored.email, stored.tier) == ("Ann", "ann@example.com", "plus")
    assert stored.attributes == {"region": "us-east", "plan": "scale"}
    with session_scope() as s:
        assert s.get(ContactPreference, stored.id).frequency == "weekly"


def test_bom_quoted_commas_and_newlines_keep_physical_line_numbers(sqlite_url, tmp_path):
    text = (
        'external_id,name,attr.notes,timezone\n'
        'q1,"Lee, Ann","first line\nsecond line, with comma",Europe/Paris\n'
        'q2,"Say ""hi""",,Nowhere/City\n'
        "q3,Cy,,UTC\n"
    )
    report = import_customers(write(tmp_path / "bom.csv", b"\xef\xbb\xbf" + text.encode()))
    assert report.imported == 2 and report.warnings == []
    assert rejected(report) == {4: "timezone"}
    assert customer("q1").name == "Lee, Ann"
    assert customer("q1").attributes == {"notes": "first line\nsecond line, with comma"}


def test_invalid_bytes_reject_their_line_only(sqlite_url, tmp_path):
    data = b"external_id,name\nu1,Ann\nu2,Bad \xff\xfe name\nu3,Zo\xc3\xab\n"
    report = import_customers(write(tmp_path / "latin.csv", data))
    assert report.imported == 2
    assert [(r.line, r.field) for r in report.rejected] == [(3, "name")]
    assert "UTF-8" in report.rejected[0].reason
    assert customer("u3").name == "Zoë"


def test_jsonl_rows_keep_native_types_and_bad_lines_are_reported(sqlite_url, tmp_path):
    lines = [
        json.dumps({"external_id": "j1", "email_opt_in": True, "preferred_channels": ["sms", "email"],
                    "attributes": {"interests": ["news"], "ltv": 12.5}, "attr.zip": "01234"}),
        "{not json",
        "[1, 2]",
        "",
        json.dumps({"external_id": "j2", "phone": "+4915123456789", "favourite": 1}),
        json.dumps({"external_id": "j3", "attributes": {"bad key": 1}}),
    ]  # fmt: skip
    report = import_customers(write(tmp_path / "c.jsonl", "\n".join(lines) + "\n"))
    assert report.imported == 2
    assert rejected(report) == {2: "", 3: "", 6: "attributes"}
    assert report.warnings and "favourite" in report.warnings[0]
    assert customer("j1").attributes == {"interests": ["news"], "ltv": 12.5, "zip": "01234"}
    with session_scope() as s:
        assert s.get(ContactPreference, customer("j1").id).preferred_channels == ["sms", "email"]


def test_file_level_problems_raise_a_clear_error(sqlite_url, tmp_path):
    with pytest.raises(CustomerImportError, match="external_id is missing"):
        import_customers(write(tmp_path / "a.csv", "id,name\n1,Ann\n"))
    with pytest.raises(CustomerImportError, match="cannot read"):
        import_customers(tmp_path / "missing.csv")
    with pytest.raises(CustomerImportError, match="--format"):
        import_customers(write(tmp_path / "a.txt", "external_id\n1\n"))
    with pytest.raises(CustomerImportError, match="empty"):
        import_customers(write(tmp_path / "empty.csv", ""))
    assert count(Customer) == 0


def test_unknown_columns_warn_and_huge_fields_are_rejected(sqlite_url, tmp_path):
    huge = "x" * 1_000_000
    text = f"external_id,name,shoe_size,attr.bad-key\nh1,{huge},42,1\nh2,Ann,43,2\n"
    report = import_customers(write(tmp_path / "h.csv", text))
    assert report.imported == 1
    assert [(r.line, r.field) for r in report.rejected] == [(2, "name")]
    assert "1000000 characters" in report.rejected[0].reason
    assert "shoe_size" in report.warnings[0] and "attr.bad-key" in report.warnings[0]
    assert customer("h2").attributes == {}


def test_duplicates_are_caught_across_chunks_and_progress_counts_every_row(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setattr(import_run, "CHUNK_SIZE", 3)
    rows = "".join(f"d{i},N{i}\n" for i in range(7)) + "d1,Again\nd9,\n"
    seen: list[int] = []
    report = import_customers(write(tmp_path / "d.csv", "external_id,name\n" + rows), progress=seen.append)
    assert report.imported == 8
    assert [(r.line, r.field) for r in report.rejected] == [(9, "external_id")]
    assert sum(seen) == 9
    assert customer("d1").name == "N1"


def test_field_normalisation():
    assert normalise_phone("07400 123456", "GB") == "+447400123456"
    assert normalise_phone("+1 (201) 555-0123", "DE") == "+12015550123"
    with pytest.raises(ValueError):
        normalise_phone("12345", "US")
    assert normalise_locale("pt_br") == "pt-BR" and normalise_locale("zh-hant-tw") == "zh-Hant-TW"
    texts = ("7", "-2.5", "TRUE", "01234", "7 days")
    assert [typed_attribute(v) for v in texts] == [7, -2.5, True, "01234", "7 days"]


@pytest.mark.slow  # about 5 s of CPU; measured throughput lives in bench/import_customers.py
def test_one_hundred_thousand_rows_are_written_in_bulk(sqlite_url, tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("external_id,name,tier,timezone,marketing_opt_in,attr.region\n")
        for i in range(100_000):
            tier, opt_in = ("standard", "yes") if i % 2 else ("premium", "no")
            f.write(f"big-{i},Customer {i},{tier},UTC,{opt_in},r{i % 5}\n")
    report = import_customers(path)
    assert (report.imported, report.updated, report.rejected) == (100_000, 0, [])
    assert count(Customer) == 100_000
    assert count(ConsentEvent) == 100_000


def test_bulk_generator_rows_are_all_valid(sqlite_url, tmp_path):
    report = import_customers(write_bulk_csv(tmp_path / "bulk.csv", 500))
    assert (report.imported, report.rejected) == (500, [])
