"""The exact message every declared bad input gets from its reference, against the committed record.

The declared regex (``BadInput.match``) says which argument a message must name; this test pins the
whole text, so a reworded, truncated or emptied message is seen in review instead of slipping through.
After an intended change of wording, regenerate the record with
``ATTNLAB_UPDATE_MESSAGES=1 pytest tests/forms/test_bad_input_messages.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from attnlab.forms import all_forms

RECORD = Path(__file__).with_name("bad_input_messages.json")
FORMS = all_forms()


def _message(form, bad) -> str:
    try:
        form.reference(*bad.args, **bad.kwargs)
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "(no error)"


def _observed(form) -> dict[str, str]:
    return {bad.label: _message(form, bad) for bad in form.bad_inputs()}


def _update_record(name: str, messages: dict[str, str]) -> None:
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    record[name] = messages
    RECORD.write_text(json.dumps(record, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


# Each test calls its own form's reference (no shared fixture), so a test fails exactly when its form's
# messages change, and tools that map tests to the code they run (mutation testing) see which one does.
@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_every_bad_input_gets_its_recorded_message(form) -> None:
    observed = _observed(form)
    if os.environ.get("ATTNLAB_UPDATE_MESSAGES"):
        _update_record(form.name, observed)
    recorded = json.loads(RECORD.read_text()).get(form.name)
    assert recorded is not None, f"no recorded messages for {form.name}; regenerate {RECORD.name} (see module doc)"
    assert observed == recorded


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_messages_are_distinct_enough_to_tell_the_cases_apart(form) -> None:
    # The same message for most of a form's cases would mean they do not say what is wrong.
    messages = list(_observed(form).values())
    assert len(set(messages)) >= len(messages) // 2, form.name
