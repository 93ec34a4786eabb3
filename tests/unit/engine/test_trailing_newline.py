"""A name that ends in a newline must never pass a "safe, write it bare" check.

Python's ``$`` matches before a trailing newline, so ``re.match(r"^[a-z]+$", "x\\n")`` succeeds: every
validation pattern on names that can come from a log (hats, include and exec targets, cursor
names) must anchor with ``\\Z``. Found by hypothesis (hat name ``"0\\n"``).
"""
import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import cursor
from ansible_collections.armada.apparmor.plugins.module_utils import profile_model as pm
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule


def test_hat_name_with_trailing_newline_is_quoted_and_found_again():
    pf = pm.ProfileFile.parse("profile p {\n  /p r,\n}\n")
    pf.add_rules("p//0\n", ["/a r,"], create=True)
    text = pf.render()
    assert "^0\n {" not in text  # written bare, the parser would read a hat named "0"
    hat = pm.ProfileFile.parse(text).find("p//0\n")
    assert hat is not None and hat.name == "0\n"


def test_exec_target_with_trailing_newline_is_not_written_bare():
    rule = FileRule(path="/usr/bin/x", perms="", exec_mode="Px", target="other\n")
    text = rule.render()
    assert "\n" not in text
    assert parse_rule(text).target == "other\n"


def test_cursor_name_with_trailing_newline_is_refused():
    with pytest.raises(cursor.CursorError):
        cursor.check_name("update\n")
