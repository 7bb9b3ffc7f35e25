"""What the book's code cells call: each helper runs the library and returns something to display.

Every helper returns an :class:`Output` (Markdown text and figures) that a notebook displays and a test
can read as text. Nothing here trains or sweeps: checks, invariants and parity run live (they take
seconds), task and benchmark results come from the cache (:mod:`attnlab.book.results`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import platform
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnlab.book import generate, results, text
from attnlab.book.reported import reported


@dataclass
class Output:
    """Markdown parts and figure files, displayed in order."""

    parts: list[str | Path] = field(default_factory=list)

    def add(self, part: str | Path) -> Output:
        self.parts.append(part)
        return self

    def __str__(self) -> str:
        return "\n\n".join(p if isinstance(p, str) else f"![{p.stem}]({p})" for p in self.parts)

    def _repr_markdown_(self) -> str:
        return str(self)

    def _ipython_display_(self) -> None:
        from IPython.display import SVG, Image, Markdown, display

        for part in self.parts:
            if isinstance(part, Path):
                display(SVG(filename=str(part)) if part.suffix == ".svg" else Image(filename=str(part)))
            else:
                display(Markdown(part))


def markdown(*parts: str) -> Output:
    return Output([p for p in parts if p])


# ---------------------------------------------------------------------------------------- citations


@functools.cache
def bibliography() -> dict[str, Any]:
    """Key → paper, for every paper in the book's ``references.bib`` (:mod:`attnlab.bibliography`)."""
    from attnlab.bibliography import papers

    return {paper.key: paper for paper in papers()}


def cite(key: str, fallback: str = "", *, textual: bool = False) -> str:
    """A ``{cite}`` role for a paper in the bibliography, else ``fallback`` as plain text."""
    if key in bibliography():
        return f"{{cite:{'t' if textual else 'p'}}}`{key}`"
    return fallback or key


def papers_named_in(source_text: str) -> list[str]:
    """Keys of bibliography papers whose arXiv id appears in a free-text source."""
    return [p.key for p in bibliography().values() if p.arxiv and p.arxiv in source_text]


def cited(free_text: str) -> str:
    """Free text (a form's note) cleaned, with a citation for each bibliography paper it names by arXiv id."""
    keys = papers_named_in(free_text)
    return text.literals(text.scrub(free_text)) + ("" if not keys else " " + " ".join(cite(k) for k in keys))


def source_markdown(source: Any) -> str:
    """A claim's or form's source: citation, place in the paper, quote (a ``Source``), or cleaned text."""
    from attnlab.papers import Source

    if isinstance(source, Source):
        if source.paper is None:
            where = "attnlab's own derivation" + (f" ({text.literals(source.locator)})" if source.locator else "")
        else:
            where = f"{cite(source.paper.key, source.paper.cite(), textual=True)}"
            if source.locator:
                where += f", {text.literals(source.locator)}"
            if source.abstract_level:
                where += " (only the abstract was read)"
        if source.quote:
            where += f"\n\n> {text.literals(' '.join(source.quote.split()))}"
        return where
    return cited(str(source))


# ----------------------------------------------------------------------------------------- verdicts


def _check_function(claim: Any) -> Any:
    check = claim.quick
    while isinstance(check, functools.partial):
        check = check.func
    return check


def claim_kind(claim: Any) -> str:
    """``paper``, ``reading`` or ``derived`` where the claim records it, else ``-``."""
    return getattr(claim, "kind", None) or "-"


def claim_link(claim: Any) -> str:
    return f"{{ref}}`{claim.id} <{text.anchor('claim', claim.id)}>`"


def run_claim(claim: Any) -> tuple[str, str, float]:
    """``(observed verdict, evidence, seconds)`` of a claim's quick check; an exception is a verdict of ``error``."""
    import time

    start = time.perf_counter()
    try:
        result = claim.quick()
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - start
    return result.verdict, result.evidence, time.perf_counter() - start


def verdict_table() -> Output:
    """Every registered claim: family, kind, recorded and observed verdict, evidence (checks run now)."""
    from attnlab.theory import registry

    claims = registry.claims()
    rows: dict[bool, list[list[Any]]] = {True: [], False: []}
    inconsistent = []
    total = 0.0
    for claim in claims:
        observed, evidence, seconds = run_claim(claim)
        total += seconds
        if observed != claim.verdict:
            inconsistent.append(claim.id)
        mark = observed if observed == claim.verdict else f"**{observed}** (recorded {claim.verdict})"
        row = [claim_link(claim), claim_kind(claim), mark, evidence]
        rows[claim.family == "operators"].append(row)
    header = ["claim", "kind", "verdict", "evidence"]
    families = sorted({c.family for c in claims})
    counts = {v: sum(1 for c in claims if c.verdict == v) for v in registry.VERDICTS}
    summary = (
        f"{len(claims)} claims in {len(families)} families ({', '.join(families)}): "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + f". Every check ran while this page was built ({total:.1f} s in all); "
        + (
            "each observed verdict equals the recorded one."
            if not inconsistent
            else f"**{len(inconsistent)} observed verdicts differ from the recorded ones: {', '.join(inconsistent)}.**"
        )
    )
    out = markdown(summary, text.table(header, rows[False]))
    if rows[True]:
        out.add(
            f"The {len(rows[True])} operator invariants, registered as claims of family `operators` "
            "(their pages are in the Operators chapter and in the `operators` claim chapter):"
        )
        out.add(":::{dropdown} Operator invariants\n" + text.table(header, rows[True]) + "\n:::")
    return out


def check_outcome(claim: Any, result: Any) -> Output:
    """The outcome of a check the page just ran: observed against recorded verdict, evidence and data."""
    agrees = result.verdict == claim.verdict
    head = f"**Observed verdict: {result.verdict}** — " + (
        "the same as the recorded verdict." if agrees else f"**the recorded verdict is {claim.verdict}: they differ.**"
    )
    out = markdown(head, f"Evidence: {text.literals(result.evidence)}")
    scalars = [[k, text.number(v, ".6g")] for k, v in result.data.items() if isinstance(v, (int, float, str, bool))]
    if scalars:
        out.add(text.table(["measured", "value"], scalars[:20]))
    return out


def claim_figure(claim_id: str) -> Output:
    """The claim's headline figure from the cache (written by ``attnlab book`` before the pages run)."""
    files = results.claim_figures(claim_id)
    if not files:
        raise FileNotFoundError(
            f"no cached figure for claim {claim_id!r} under {results.results_root() / 'figures'}; "
            "`attnlab book` writes it before building"
        )
    out = Output()
    for path in files:
        out.add(path).add(f"*Figure {path.stem}* (data: `{path.with_suffix('.json').name}` in the results cache).")
    return out


def figure_claims(family: str) -> dict[str, str]:
    """For each claim of ``family`` with a figure: the id of the first claim sharing that figure."""
    from attnlab.theory import registry

    first: dict[int, str] = {}
    owners = {}
    for claim in registry.claims(family):
        if claim.figure is not None:
            owners[claim.id] = first.setdefault(id(claim.figure), claim.id)
    return owners


# --------------------------------------------------------------------------------------- operators


def form_index() -> Output:
    """One row per form: family page, title, status, fast paths, invariants, source."""
    from attnlab.book.generate import operator_families, operator_page

    rows = []
    for family, forms in operator_families().items():
        for form in forms:
            rows.append(
                [
                    f"{{doc}}`{form.name} </{operator_page(family)}>`",
                    form.title,
                    form.status,
                    ", ".join(p.name for p in form.fast_paths) or "-",
                    len(form.invariants),
                    len(form.mutants),
                    source_markdown(form.source),
                ]
            )
    return markdown(text.table(["form", "title", "status", "fast paths", "invariants", "mutants", "source"], rows))


def _quiet() -> Any:
    """Silence the warnings a deliberately wrong variant (a mutant) may raise while it runs."""
    import contextlib

    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(np.errstate(all="ignore"))
    return stack


def invariant_results(form_name: str) -> list[dict[str, Any]]:
    """Each invariant on the form's fixed samples, and whether each of its mutants is caught."""
    from attnlab.core import mutated
    from attnlab.forms import get_form
    from attnlab.testing.samples import applicable, fixed_samples

    form = get_form(form_name)
    samples = fixed_samples(form)
    rows = []
    for inv in form.invariants:
        cases = applicable(inv, samples)
        failures = []
        for sample in cases:
            try:
                inv.check(form.module, sample)
            except AssertionError as exc:
                failures.append(f"{sample.label}: {exc}")
        caught = {}
        for name in inv.mutants:
            with _quiet(), mutated(form.module, form.mutant(name)):
                caught[name] = sum(1 for s in cases if _fails(inv, form.module, s))
        rows.append(
            {
                "name": inv.name,
                "description": inv.description,
                "samples": len(cases),
                "failures": failures,
                "caught": caught,
            }
        )
    return rows


def _fails(inv: Any, module: Any, sample: Any) -> bool:
    try:
        inv.check(module, sample)
    except AssertionError:
        return True
    return False


def invariant_table(form_name: str) -> Output:
    rows = invariant_results(form_name)
    table_rows = []
    for row in rows:
        result = "holds" if not row["failures"] else f"**fails** on {len(row['failures'])}: {row['failures'][0]}"
        mutants = ", ".join(f"`{m}` ({n}/{row['samples']})" for m, n in row["caught"].items())
        table_rows.append([f"`{row['name']}`", row["description"], row["samples"], result, mutants])
    missed = [f"{row['name']}/{m}" for row in rows for m, n in row["caught"].items() if n == 0]
    note = (
        "Each invariant ran on the form's fixed samples it applies to; each mutant (a deliberately wrong "
        "variant of the reference) is listed with the number of those samples on which the invariant caught it."
        + (f" **Not caught: {', '.join(missed)}.**" if missed else " Every mutant is caught.")
    )
    return markdown(
        note, text.table(["invariant", "property", "samples", "result", "mutants caught (samples)"], table_rows)
    )


def _spread(items: Sequence[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over ``items`` (first and last included)."""
    if len(items) <= count:
        return list(items)
    index = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in dict.fromkeys(index.tolist())]


def parity_results(form_name: str, samples: int = 4, gradient_samples: int = 1) -> list[dict[str, Any]]:
    """Forward (and gradient) agreement of each fast path with the float64 reference, per dtype, on CPU."""
    from attnlab.forms import get_form
    from attnlab.testing import samples as sampling
    from attnlab.testing.parity import Implementation, forward, gradients

    form = get_form(form_name)
    rows = []
    for path in form.fast_paths:
        impl = Implementation.of(path)
        chosen = _spread(sampling.parity_samples(form, path), samples)
        grads = sampling.gradient_samples(form, path)[:gradient_samples] if path.differentiable else []
        for dtype in path.dtypes:
            judged = [forward(form, impl, s, dtype) for s in chosen]
            worst = max(judged, key=lambda j: j.error.abs / j.bound if j.bound > 0 else np.inf)
            row = {
                "path": path.name,
                "kind": path.kind,
                "dtype": dtype,
                "samples": len(judged),
                "passed": sum(j.passed for j in judged),
                "max_error": max(j.error.abs for j in judged),
                "worst_error": worst.error.abs,
                "worst_bound": worst.bound,
                "worst_sample": chosen[judged.index(worst)].label,
                "gradient": None,
            }
            if grads and dtype in ("float32", "float64"):
                results_ = [g for s in grads for g in gradients(form, impl, s, dtype)]
                judgements = [g.judgement for g in results_ if g.judgement is not None]
                row["gradient"] = {
                    "checked": len(results_),
                    "passed": sum(g.passed for g in results_),
                    "max_ratio": max((j.error.abs / j.bound for j in judgements if j.bound > 0), default=0.0),
                }
            rows.append(row)
    return rows


def parity_table(form_name: str) -> Output:
    from attnlab.forms import get_form

    form = get_form(form_name)
    if not form.fast_paths:
        return markdown("This form declares no fast path yet.")
    rows = []
    for r in parity_results(form_name):
        grad = r["gradient"]
        grad_text = (
            "-" if grad is None else f"{grad['passed']}/{grad['checked']} (worst {grad['max_ratio']:.2g} of bound)"
        )
        ratio = r["worst_error"] / r["worst_bound"] if r["worst_bound"] > 0 else float("inf")
        rows.append(
            [
                r["path"],
                r["dtype"],
                f"{r['passed']}/{r['samples']}",
                f"{r['max_error']:.2e}",
                f"{ratio:.2g}" if ratio <= 1 else f"**{ratio:.2g}**",
                f"`{r['worst_sample']}`",
                grad_text,
            ]
        )
    paths = "; ".join(
        f"`{p.name}` ({p.kind}, {'/'.join(p.devices)}"
        + (", with gradients" if p.differentiable else "")
        + (f", tolerance k = {p.tolerance.k:g}: {p.tolerance.reason}" if p.tolerance.reason else "")
        + ")"
        for p in form.fast_paths
    )
    return markdown(
        f"Fast paths: {paths}. Measured now on the CPU, on samples spread over the path's parity samples "
        "(the adversarial fixed shapes first, then lengths around the path's tiles). The rule is "
        "err(path, float64 reference) ≤ k · err(oracle at the path's dtype) + floor; *error / bound* is the "
        "largest ratio over the samples (below 1 passes) and *at sample* the sample where it is reached.",
        text.table(["path", "dtype", "pass", "max abs error", "error / bound", "at sample", "gradients (pass)"], rows),
    )


# ---------------------------------------------------------------------------------------- benchmarks


def _grouped(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record.get("form", "?"), record.get("shape", "?")), []).append(record)
    return groups


def cpu_bench_table() -> Output:
    """The cached CPU benchmark: one table per (form, shape), ratios against the form's baseline."""
    data = results.cpu_bench()
    meta = data["meta"]
    out = markdown(
        f"CPU, {meta['dtype']}, {meta['threads']} thread(s), median of {meta['repeats']} warm repeats, torch "
        f"{meta['torch']}; measured by `attnlab bench --quick` when this book was built "
        f"(`bench/{results.bench_path().name}` in the results cache). *× baseline* is the baseline's time "
        "divided by the implementation's (above 1: faster), in the same run."
    )
    conventions = meta.get("flop_convention", {})
    for (form, shape), records in _grouped(data["records"]).items():
        rows = [
            [
                r["implementation"],
                "-" if r.get("time_s") is None else f"{1e3 * r['time_s']:.3g}",
                text.number(r.get("speedup"), ".2f"),
                text.number(r.get("speedup_vs_numpy"), ".2f"),
                text.number(r.get("gflops"), ".3g"),
                r.get("gate", "-"),
            ]
            for r in records
        ]
        baseline = records[0].get("baseline", "?")
        out.add(f"**{form}**, `{shape}` — baseline `{baseline}`; FLOPs: {text.literals(conventions.get(form, '-'))}.")
        out.add(text.table(["implementation", "ms", "× baseline", "× NumPy", "GFLOP/s", "gate"], rows))
    slopes = [s for s in data.get("scaling") or [] if "loglog_slope" in s]
    if slopes:
        out.add("Scaling with the sequence length: the log-log slope of time against n (1 is linear time).")
        out.add(
            text.table(
                ["form", "implementation", "lengths", "dtype", "log-log slope", "gate"],
                [
                    [
                        s["form"],
                        s["implementation"],
                        s["shape"],
                        s.get("dtype", "-"),
                        text.number(s["loglog_slope"], ".2f"),
                        s.get("gate", "-"),
                    ]
                    for s in slopes
                ],
            )
        )
    return out


def gpu_bench_tables() -> Output:
    """Every GPU record file in ``bench/results/``, one table per (form, shape)."""
    files = results.gpu_records()
    if not files:
        return markdown("No GPU benchmark records are kept in `bench/results/`.")
    out = Output()
    for path, payload in files:
        meta = payload.get("meta", {})
        out.add(
            f"`bench/results/{path.name}`: {meta.get('device', '?')}, {meta.get('dtype', '?')}, torch "
            f"{meta.get('torch', '?')}, {meta.get('timer', '')}, TF32 {'on' if meta.get('tf32') else 'off'}."
        )
        for (form, shape), records in _grouped(payload["records"]).items():
            rows = [
                [
                    r.get("implementation"),
                    text.number(r.get("time_ms"), ".3f"),
                    text.number(r.get("speedup"), ".2f"),
                    "pass" if r.get("gate") is True else r.get("gate"),
                ]
                for r in records
            ]
            out.add(f"**{form}**, `{shape}` — baseline `{records[0].get('baseline', '?')}`.")
            out.add(text.table(["implementation", "ms", "× baseline", "gate"], rows))
    return out


# --------------------------------------------------------------------------------------- check


def kernel_report(report: Any, *, show: str = "all", limit: int = 12) -> Output:
    """A :class:`attnlab.testing.KernelReport` as a table (``show="failures"``: failing rows only)."""
    checked = [r for r in report.rows if not r.skipped]
    verdict = "PASS" if report.passed else f"FAIL ({len(report.failures)} of {len(checked)} outputs)"
    head = (
        f"**{verdict}** — `{report.kernel}` as form `{report.form}` [{report.dtype}, {report.device}], "
        f"{len(report.rows)} outputs ({len(report.rows) - len(checked)} skipped: the convention cannot express them)."
    )
    chosen = report.failures if show == "failures" else report.rows
    rows = []
    for r in chosen[:limit]:
        detail = r.skipped or r.diagnosis
        if r.first_index is not None:
            detail = f"first at {r.first_index}; {detail}" if detail else f"first at {r.first_index}"
        result = "skip" if r.skipped else "pass" if r.passed else "**FAIL**"
        rows.append(
            [
                f"`{r.sample}`",
                r.output,
                text.number(r.max_abs_error, ".2e"),
                text.number(r.bound, ".2e"),
                result,
                detail,
            ]
        )
    more = f"({len(chosen) - limit} more rows not shown.)" if len(chosen) > limit else ""
    return markdown(head, text.table(["sample", "output", "max abs error", "bound", "result", "diagnosis"], rows), more)


# ---------------------------------------------------------------------------------------- tasks


def _experiment_configs(folder: Path) -> list[dict[str, Any]]:
    path = folder / "config.json"
    if not path.exists():
        return []
    return list(json.loads(path.read_text())["configs"].values())


def criteria_table(task_name: str) -> Output:
    """The task's reproduction criteria from the cached summary: measured beside threshold."""
    summary, _, folder = results.task_outcome(task_name)
    criteria = summary.get("criteria", {})
    rows = []
    for name, item in criteria.items():
        value = item.get("measured", item.get("value"))
        threshold = item.get("threshold")
        if "op" in item and not isinstance(threshold, str):
            threshold = f"{item['op']} {threshold:g}"
        shown = ", ".join(text.number(v) for v in value) if isinstance(value, list) else text.number(value)
        rows.append([f"`{name}`", shown, text.number(threshold), "yes" if item.get("passed") else "**no**"])
    passed = sum(1 for item in criteria.values() if item.get("passed"))
    verdict = summary.get("reproduced")
    head = (
        f"{passed} of {len(criteria)} criteria met"
        + ("" if verdict is None else f"; reproduced: **{'yes' if verdict else 'no'}**")
        + f" (mode {results.book_mode()}, seeds {summary.get('seeds', '?')}; cached in `{folder.name}`)."
    )
    return markdown(head, text.table(["criterion", "measured", "threshold", "met"], rows))


def reported_table(task_name: str) -> Output:
    """The paper's reported figures beside the lab's measurements."""
    summary, _, folder = results.task_outcome(task_name)
    configs = _experiment_configs(folder)
    rows = []
    for item in reported(task_name):
        where = f"{cite(item.key, item.cite)}, {item.locator}"
        try:
            lab = item.lab(summary, configs)
        except (KeyError, StopIteration, ValueError) as exc:
            lab = f"not in this run's summary ({type(exc).__name__}: {exc})"
        rows.append([item.quantity, f"{item.paper} {where}", lab])
    if not rows:
        return markdown("No figures from the paper are tabulated for this task; the criteria above are the lab's.")
    return markdown(text.table(["quantity", "the paper", "the lab (this build)"], rows))


def task_figures(task_name: str) -> Output:
    _, figures, folder = results.task_outcome(task_name)
    if not figures:
        raise FileNotFoundError(f"task {task_name!r}: no figures in {folder}")
    out = Output()
    for path in figures:
        out.add(path).add(f"*Figure `{path.stem}`* (data: `{path.with_suffix('.json').name}` in `{folder.name}`).")
    return out


def _short_json(value: Any, limit: int = 4) -> str:
    if isinstance(value, list) and len(value) > limit:
        return f"[{_short_json(value[0])}, {_short_json(value[1])}, …, {_short_json(value[-1])}] ({len(value)} values)"
    return json.dumps(value)


def task_configs(task_name: str) -> Output:
    """The experiment's configs: the settings they share, and a table of those that differ."""
    _, _, folder = results.task_outcome(task_name)
    configs = _experiment_configs(folder)
    if not configs:
        return markdown("No config file in the cache.")
    keys = list(dict.fromkeys(k for c in configs for k in c if k != "__class__"))
    varying = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    shared = [k for k in keys if k not in varying]
    body = "Shared settings: " + ", ".join(f"`{k}` = {text.cell(_short_json(configs[0].get(k)))}" for k in shared) + "."
    if varying:
        body += "\n\n" + text.table(varying, [[_short_json(c.get(k)) for k in varying] for c in configs])
    return markdown(f":::{{dropdown}} The {len(configs)} configuration(s) of this experiment\n{body}\n:::")


def task_caveats(task_name: str) -> Output:
    """The caveats a task's summary states about its own numbers (``summary["caveats"]``), as a list."""
    summary, _, _ = results.task_outcome(task_name)
    caveats = summary.get("caveats") or []
    if not caveats:
        return markdown("The task's summary states no caveats.")
    return markdown(
        "What these numbers do not show, in the task's own words:\n\n"
        + "\n".join(f"- {text.literals(c)}" for c in caveats)
    )


def lab_notes(task_name: str) -> Output:
    """A pointer to the task's lab notes page (``book/tasks/<task>_notes.md``) when the task ships one."""
    from attnlab.book.generate import notes_page

    page = notes_page(task_name)
    if page is None:
        return markdown("This task ships no lab notes yet.")
    return markdown(f"The lab notes of this task are on the next page: {{doc}}`/{page}`.")


# ------------------------------------------------------------------------------------ reproducibility


def environment_table() -> Output:
    names = [
        "numpy",
        "scipy",
        "torch",
        "numba",
        "sympy",
        "mpmath",
        "matplotlib",
        "hypothesis",
        "jupyter-book",
        "sphinx",
        "myst-nb",
        "jupyter-cache",
        "sphinxcontrib-bibtex",
        "jupytext",
    ]
    rows = [["python", platform.python_version()], ["platform", f"{platform.system()} {platform.machine()}"]]
    for name in names:
        try:
            rows.append([name, importlib.metadata.version(name)])
        except importlib.metadata.PackageNotFoundError:
            rows.append([name, "not installed"])
    mathjax = generate.book_dir() / "_extra" / "mathjax" / "VERSION"
    rows.append(["MathJax (npm)", mathjax.read_text().strip() if mathjax.exists() else "not installed"])
    return markdown(text.table(["package", "version"], rows))


def seeds_table() -> Output:
    """Where the seeds of what the book shows are fixed."""
    from attnlab.bench import BENCH_SEED
    from attnlab.testing.parity import UPSTREAM_SEED

    rows = [
        ["benchmark inputs", f"`attnlab.bench.BENCH_SEED` = {BENCH_SEED}"],
        ["upstream gradient of every gradient check", f"`attnlab.testing.parity.UPSTREAM_SEED` = {UPSTREAM_SEED}"],
        ["fixed samples of each form", "`attnlab.testing.samples.fixed_samples(form, seed=0)`: sample i uses seed i"],
        ["parity samples of each fast path", "`parity_samples(form, path, seed=11)`"],
        ["claim checks", "each check's own `seed` keyword (its default is in the check's signature)"],
        [
            "synthetic tasks",
            f"seeds {results.task_seeds(True)} with `--quick`, {results.task_seeds(False)} otherwise "
            "(`attnlab reproduce --seeds N` runs seeds 0..N-1)",
        ],
    ]
    return markdown(text.table(["what", "seed"], rows))


def cache_layout(max_entries: int = 40) -> Output:
    """The results cache as it is now (two levels deep)."""
    root = results.results_root()
    lines = [f"{root.name}/"]
    for child in sorted(root.iterdir()) if root.exists() else []:
        if child.name.startswith("."):
            continue
        lines.append(f"  {child.name}/" if child.is_dir() else f"  {child.name}")
        if child.is_dir():
            entries = sorted(p for p in child.iterdir() if not p.name.startswith("."))
            for entry in entries[:8]:
                lines.append(f"    {entry.name}{'/' if entry.is_dir() else ''}")
            if len(entries) > 8:
                lines.append(f"    ... ({len(entries) - 8} more)")
        if len(lines) > max_entries:
            lines.append("  ...")
            break
    return markdown("```text\n" + "\n".join(lines) + "\n```")
