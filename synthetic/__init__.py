"""Synthetic tasks that reproduce papers' figures: in-context regression, OCR recall, laundry list."""
