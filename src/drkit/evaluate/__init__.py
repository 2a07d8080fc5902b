"""Stage 4, evaluate: what a trained model (or a store) is worth.

- :mod:`~drkit.evaluate.evaluation`: :func:`evaluate_model` / :func:`evaluate_run` (``drkit eval``);
- :mod:`~drkit.evaluate.corruptions` and :mod:`~drkit.evaluate.robustness`: corruptions, shifts, mCE;
- :mod:`~drkit.evaluate.ood`: out-of-distribution detection;
- :mod:`~drkit.evaluate.certify`: randomized-smoothing certification;
- :mod:`~drkit.evaluate.report`, :mod:`~drkit.evaluate.plots`, :mod:`~drkit.evaluate.formatting`:
  ``drkit compare``'s Markdown/HTML report and figures;
- :mod:`~drkit.evaluate.audit`: a store's soft labels against the labels and its teachers (``drkit audit``).
"""

from typing import Any

from .._compat import moved_name
from .audit import audit_store
from .certify import CertifyConfig
from .evaluation import (
    EvalConfig,
    Evaluation,
    check_run_data,
    evaluate_model,
    evaluate_run,
    load_evaluation,
    predict,
    teacher_module,
    to_jsonable,
)
from .report import compare

__all__ = ["EvalConfig", "Evaluation", "evaluate_model", "evaluate_run", "load_evaluation", "check_run_data", "predict",
           "teacher_module", "to_jsonable", "compare", "audit_store", "CertifyConfig"]


def __getattr__(name: str) -> Any:  # names of drkit 0.1's evaluate module that live elsewhere now
    return moved_name(__name__, name)
