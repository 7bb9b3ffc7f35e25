"""The lab's bibliography: every paper a form, a claim or the tasks cite, collected from their sources.

The book writes it to ``references.bib``; a key defined twice with different entries is an error.
"""

from __future__ import annotations

from attnlab.forms import all_forms
from attnlab.papers import PAPERS, Paper


def papers() -> list[Paper]:
    """:data:`attnlab.papers.PAPERS` and every paper a form's or a claim's source names, once each."""
    from attnlab.theory.registry import claims

    found: dict[str, Paper] = dict(PAPERS)
    cited = [form.source.paper for form in all_forms()] + [claim.source.paper for claim in claims()]
    for paper in cited:
        if paper is None:
            continue
        if paper.key in found and found[paper.key] != paper:
            raise ValueError(f"paper key {paper.key!r} is defined twice with different entries")
        found.setdefault(paper.key, paper)
    return list(found.values())


def bibtex() -> str:
    """The whole bibliography as BibTeX."""
    return "\n".join(p.bibtex() for p in papers())
