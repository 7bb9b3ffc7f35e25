"""``attnlab check TARGET --form F``: the lab's validation of a form, run on a user's kernel."""

from __future__ import annotations

from typing import Annotated

import typer

from attnlab.testing.check import ARRAYS, CAUSAL_AS, CONVENTIONS, LAYOUTS, check_kernel


def _choice(value: str | None, allowed: tuple[str, ...], hint: str) -> str | None:
    if value is not None and value not in allowed:
        raise typer.BadParameter(f"expected one of {', '.join(allowed)}, got {value!r}", param_hint=hint)
    return value


def register(app: typer.Typer) -> None:
    """Add the ``check`` verb to the ``attnlab`` CLI."""

    @app.command("check")
    def check(
        target: Annotated[str, typer.Argument(help="The kernel, as package.module:function.")],
        form: Annotated[str, typer.Option("--form", help="The attention form it implements (see `attnlab forms`).")],
        dtype: Annotated[str, typer.Option("--dtype", help="float32, float16, bfloat16 or float64.")] = "float32",
        device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
        grad: Annotated[bool, typer.Option("--grad", help="Also check the gradients (torch kernels).")] = False,
        samples: Annotated[int | None, typer.Option("--samples", help="Only the first N samples.")] = None,
        json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        layout: Annotated[str, typer.Option("--layout", help="bhnd (B, H, n, d) or bnhd (B, n, H, d).")] = "bhnd",
        arrays: Annotated[str, typer.Option("--arrays", help="torch or numpy.")] = "torch",
        convention: Annotated[
            str, typer.Option("--convention", help="attnlab (scale/causal/mask), sdpa or flash keywords.")
        ] = "attnlab",
        causal_as: Annotated[
            str | None,
            typer.Option("--causal-as", help="flag (the convention's causal keyword) or mask (bottom-right mask)."),
        ] = None,
        k: Annotated[float, typer.Option("--k", help="The fudge factor k of the tolerance rule.")] = 5.0,
    ) -> None:
        """Validate your own kernel against a form's reference; exit code 1 if any sample fails."""
        from attnlab.forms import FORMS

        if form not in FORMS:
            raise typer.BadParameter(f"unknown form {form!r}; known: {', '.join(FORMS)}", param_hint="--form")
        if dtype not in ("float32", "float16", "bfloat16", "float64"):
            raise typer.BadParameter(
                f"expected float32, float16, bfloat16 or float64, got {dtype!r}", param_hint="--dtype"
            )
        if device not in ("cpu", "cuda"):
            raise typer.BadParameter(f"expected cpu or cuda, got {device!r}", param_hint="--device")
        if samples is not None and samples < 1:
            raise typer.BadParameter(f"expected a positive count, got {samples}", param_hint="--samples")
        if k <= 0:
            raise typer.BadParameter(f"expected a positive fudge factor, got {k}", param_hint="--k")
        _choice(layout, LAYOUTS, "--layout")
        _choice(arrays, ARRAYS, "--arrays")
        _choice(convention, CONVENTIONS, "--convention")
        _choice(causal_as, CAUSAL_AS, "--causal-as")
        if ":" not in target:
            raise typer.BadParameter(f"expected package.module:function, got {target!r}", param_hint="TARGET")
        try:
            report = check_kernel(
                target,
                form=form,
                dtype=dtype,
                device=device,
                grad=grad,
                samples=samples,
                layout=layout,
                arrays=arrays,
                convention=convention,
                causal_as=causal_as,
                k=k,
            )
        except (ImportError, AttributeError) as exc:
            raise typer.BadParameter(f"cannot import {target!r}: {exc}", param_hint="TARGET") from None
        except (TypeError, ValueError) as exc:
            typer.echo(f"attnlab check: {exc}", err=True)
            raise typer.Exit(2) from None
        if json_output:
            typer.echo(report.to_json())
        else:
            from attnlab.console import wide_console

            wide_console().print(report.table())
        raise typer.Exit(0 if report.passed else 1)
