"""Bad inputs declared by each form are rejected by its reference with the argument named."""

from __future__ import annotations

import re

import pytest

from attnlab.forms import all_forms

FORMS = all_forms()
BAD_CASES = [pytest.param(form, bad, id=f"{form.name}-{bad.label}") for form in FORMS for bad in form.bad_inputs()]


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_at_least_ten_bad_input_cases(form) -> None:
    assert len(form.bad_inputs()) >= 10


@pytest.mark.parametrize(("form", "bad"), BAD_CASES)
def test_bad_input_is_rejected_with_a_named_argument(form, bad) -> None:
    with pytest.raises(bad.error) as caught:
        form.reference(*bad.args, **bad.kwargs)
    assert re.search(bad.match, str(caught.value)), f"message {str(caught.value)!r} does not match {bad.match!r}"
