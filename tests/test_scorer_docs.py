"""docs/scorers.md is generated from the registry: the committed file is exactly what ``oarl scorers`` writes."""

from pathlib import Path

from oarl.cli import scorers

DOC = Path(__file__).resolve().parents[1] / scorers.DOC


def test_committed_scorer_table_is_what_the_registry_generates():
    text = DOC.read_text(encoding="utf-8")
    assert text == scorers.document(text), (
        "docs/scorers.md is stale: run `oarl scorers --write docs/scorers.md`"
    )
    assert scorers.HAND_WRITTEN in text  # the per-family prose


def test_write_keeps_the_hand_written_part(tmp_path):
    from oarl.cli import main

    out = tmp_path / "scorers.md"
    out.write_text("stale table\n" + scorers.HAND_WRITTEN + "\nprose\n", encoding="utf-8")
    assert main(["scorers", "--write", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == scorers.render() + "\n" + scorers.HAND_WRITTEN + "\nprose\n"


def test_cli_prints_and_writes_the_table(tmp_path, capsys):
    from oarl.cli import main

    assert main(["scorers"]) == 0
    assert "| `gradient_rms` | gradient | recommended |" in capsys.readouterr().out
    out = tmp_path / "scorers.md"
    assert main(["scorers", "--write", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == scorers.render()
