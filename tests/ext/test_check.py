"""``guard check FILE``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ext.cli import main


def test_valid_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "guard.yaml"
    path.write_text(
        "flow:\n  - {resource: a, count: 5}\n"
        "sidecar:\n  upstreams: [{url: 'http://127.0.0.1:8000'}]\n"
    )
    assert main(["check", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_every_error_is_listed_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "guard.yaml"
    path.write_text(
        "flow:\n  - {resource: a, count: -1}\n"
        "sidecar:\n"
        "  listen: nowhere\n"
        "  upstreams: [{url: 'ftp://x'}, {url: 'http://127.0.0.1:1', weight: -2}]\n"
        "  routes:\n    - {prefix: orders, resource: o, params: ['cookie:x']}\n"
        "  lb: random\n"
        "  bogus: 1\n"
    )
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    for where in (
        "flow[0].count",
        "sidecar.listen",
        "sidecar.upstreams[0].url",
        "sidecar.upstreams[1].weight",
        "sidecar.routes[0].prefix",
        "sidecar.routes[0].params[0]",
        "sidecar.lb",
        "sidecar.bogus: unknown key",
    ):
        assert f"{path}: {where}" in err, err


def test_json_file_and_syntax_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "rules.json"
    good.write_text('{"flow": [{"resource": "a", "count": 1}]}')
    assert main(["check", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"flow": [}')
    assert main(["check", str(bad)]) == 1
    assert "line 1, column 11" in capsys.readouterr().err
    broken = tmp_path / "bad.yaml"
    broken.write_text("flow:\n  - resource: a\n    count: [1\n")
    assert main(["check", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "line 3, column" in err or "line 4, column" in err, err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
