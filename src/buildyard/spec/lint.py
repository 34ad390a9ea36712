"""Warnings about a valid pipeline: choices that are allowed but probably not meant (pure, no I/O).

``validate`` prints them after checking the file; a warning never fails a run.
"""

from __future__ import annotations

import re

from buildyard.errors import Diagnostic
from buildyard.spec.models import Pipeline

#: Environment names treated as production by the warnings.
PRODUCTION = re.compile(r"^(prod|production|live)([-_.].*)?$", re.IGNORECASE)


def warnings(pipeline: Pipeline) -> list[Diagnostic]:
    """Every warning about ``pipeline``, in file order."""
    out: list[Diagnostic] = []
    gated = bool(pipeline.gates) or any(job.gates for job in pipeline.jobs.values())
    for name, job in pipeline.jobs.items():
        env = job.environment
        if env is None or env.wait_for_gates or not gated or not PRODUCTION.match(env.name):
            continue
        line, col = pipeline.position(name)
        out.append(
            Diagnostic(
                pipeline.file,
                line,
                col,
                f"jobs.{name}.environment",
                f"warning: the deployment to {env.name} can run before the pipeline's gates "
                "(wait_for_gates: false)",
                "remove wait_for_gates: false so a failed gate stops it",
            )
        )
    return out
