"""The promise -> controls mapping: drdrill's own, or a team's that replaces it, checked."""

from __future__ import annotations

import pytest

from drdrill.drill.controls import PROMISE_KEYS, load_mapping
from drdrill.errors import UsageError


def test_drdrills_mapping_covers_every_promise_with_the_four_standards():
    mapping, recorded = load_mapping(None)
    assert set(mapping) == set(PROMISE_KEYS) and recorded["source"] == "drdrill's standards.toml"
    named = " ".join(c for controls in mapping.values() for c in controls)
    for standard in ("DORA Art. 11", "ISO/IEC 27001:2022 A.8.13", "SOC 2 A1.3", "NIST SP 800-53 CP-9(1)"):
        assert standard in named


def test_a_teams_file_replaces_it_and_a_bad_one_is_a_usage_error(tmp_path):
    ours = tmp_path / "ours.toml"
    ours.write_text('[controls]\nrto = ["OUR-1"]\n')
    mapping, recorded = load_mapping(ours)
    assert mapping == {"rto": ["OUR-1"]} and recorded["source"] == str(ours) and len(recorded["sha256"]) == 64
    for text, word in (('[controls]\nrtoo = ["x"]\n', "rtoo"), ('[controls]\nrto = "x"\n', "list of strings"),
                       ("[controls\n", "controls_file")):
        ours.write_text(text)
        with pytest.raises(UsageError, match=word):
            load_mapping(ours)
    with pytest.raises(UsageError, match=r"missing\.toml"):
        load_mapping(tmp_path / "missing.toml")
