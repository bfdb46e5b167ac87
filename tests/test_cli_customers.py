import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def run_json(*args: str):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def imported(sqlite_url):
    run_json("customers", "import", str(SAMPLES / "customers.csv"))
    return sqlite_url


def test_import_reports_counts_and_reimport_updates(sqlite_url):
    first = run_json("customers", "import", str(SAMPLES / "customers.csv"))
    assert (first["imported"], first["updated"], first["rejected"]) == (300, 0, [])
    second = run_json("customers", "import", str(SAMPLES / "customers.csv"))
    assert (second["imported"], second["updated"], second["unchanged"]) == (0, 0, 300)


def test_import_with_rejected_rows_succeeds_and_lists_them(sqlite_url):
    report = run_json("customers", "import", str(SAMPLES / "bad_customers.csv"))
    assert report["imported"] == 2
    by_line = {r["line"]: r for r in report["rejected"]}
    assert by_line[4]["field"] == "email" and "@-sign" in by_line[4]["reason"]
    assert "favourite_colour" in report["warnings"][0]
    table = run("customers", "import", str(SAMPLES / "bad_customers.csv"))
    assert table.exit_code == 0
    assert "Rejected rows" in table.stdout and "Mars/Olympus_Mons" in table.stdout


def test_import_exit_codes_for_unusable_input(sqlite_url, tmp_path):
    no_id = tmp_path / "no_id.csv"
    no_id.write_text("name,email\nAnn,ann@example.com\n")
    result = run("customers", "import", str(no_id))
    assert result.exit_code == 2 and "external_id" in result.stderr
    assert run("customers", "import", str(tmp_path / "missing.csv")).exit_code == 2
    assert run("customers", "import", str(no_id), "--format", "xml").exit_code == 2
    all_bad = tmp_path / "all_bad.csv"
    all_bad.write_text("external_id,timezone\nx1,Nowhere/Town\n")
    result = run("customers", "import", str(all_bad), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["rejected"][0]["field"] == "timezone"
    jsonl_as_csv = tmp_path / "data.txt"
    jsonl_as_csv.write_text('{"external_id": "t1"}\n')
    assert run("customers", "import", str(jsonl_as_csv)).exit_code == 2
    assert run_json("customers", "import", str(jsonl_as_csv), "--format", "jsonl")["imported"] == 1


def test_show_masks_contact_details_unless_revealed(imported):
    shown = run_json("customers", "show", "cust-0004")
    assert shown["profile"]["email"] == "a***@e***"
    assert shown["profile"]["phone"].startswith("+***")
    assert {"channel": "*", "topic": "marketing", "state": "opted_out"} in shown["consent"]
    assert shown["preferences"]["preferred_channels"] == ["social", "email"]
    assert shown["messages"] == []
    revealed = run_json("customers", "show", "cust-0004", "--reveal")
    assert revealed["profile"]["email"] == "ananya.singh@example.org"
    text = run("customers", "show", "cust-0004")
    assert text.exit_code == 0 and "ananya.singh@example.org" not in text.stdout
    assert ("Preferences: preferred channels: social, email; frequency: any; quiet hours: none of their own; "
            "do not contact: no") in " ".join(text.stdout.split())
    assert run("customers", "show", "nobody").exit_code == 1


def test_list_by_segment_and_segment_commands(imported):
    listed = run_json("customers", "list", "--segment", "premium", "--limit", "5")
    assert len(listed["customers"]) == 5 and listed["count"] > 5
    assert all(c["tier"] == "premium" and "@example" not in c["email"] for c in listed["customers"])
    assert run("customers", "list", "--segment", "nope").exit_code == 2

    segments = {s["name"]: s for s in run_json("segments", "list")}
    assert segments["all"]["count"] == 300
    assert segments["premium"]["count"] == listed["count"]
    preview = run_json("segments", "preview", "us_east_outage", "--limit", "3")
    assert preview["count"] == segments["us_east_outage"]["count"] and len(preview["sample"]) == 3
    assert all("@example" not in c["email"] for c in preview["sample"])
    assert run("segments", "preview", "nope").exit_code == 2


def test_uninitialised_database_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCH_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    from orchestrator.settings import get_settings

    get_settings.cache_clear()
    result = run("customers", "list")
    assert result.exit_code == 1 and "orchestrator init" in result.stderr
