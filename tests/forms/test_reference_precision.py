"""Every reference runs the same math in float32 inside ``reference_precision(np.float32)``.

The bench and users who ask what the operator itself loses to float32 rounding rely on it: the output comes
in float32 (complex64 for complex-valued forms), within float32 rounding of the float64 output, or the call
is refused by name when float32 cannot represent an intermediate.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.forms import all_forms
from attnlab.testing.samples import fixed_samples
from attnlab.validation import reference_precision

FORMS = all_forms()


def _first(out):
    return np.asarray(out[0] if isinstance(out, tuple) else out)


@pytest.mark.parametrize("form", FORMS, ids=[f.name for f in FORMS])
def test_reference_computes_in_the_requested_precision(form) -> None:
    for sample in fixed_samples(form):
        high = _first(sample.call(form.reference))
        try:
            with reference_precision(np.float32):
                low = _first(sample.call(form.reference))
        except ValueError as exc:  # float32 cannot hold an intermediate: refused by name, not returned
            assert "not finite in float32" in str(exc), f"{sample.label}: {exc}"
            continue
        expected = np.complex64 if high.dtype.kind == "c" else np.float32
        assert low.dtype == expected, f"{sample.label}: {low.dtype}"
        if high.size:
            scale = max(1.0, float(np.max(np.abs(high))))
            assert float(np.max(np.abs(low - high))) <= 1e-3 * scale, sample.label
