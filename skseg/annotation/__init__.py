"""Annotating with a model in the loop: tasks, answers, errors, Label Studio.

The logic of skseg's Prodigy recipes, testable and usable without Prodigy, one
module per thing it handles:

* :mod:`~skseg.annotation.tasks`: long files cut into chunks pre-annotated by an
  estimator (lazy, so later tasks see re-tuned thresholds);
* :mod:`~skseg.annotation.spans`: labelled spans, to and from annotations;
* :mod:`~skseg.annotation.examples`: answers mapped back to file time before they
  are saved (``before_db``), answers validated;
* :mod:`~skseg.annotation.answers`: accepted answers to annotations, RTTM and UEM;
* :mod:`~skseg.annotation.errors`: error regions between a reference and
  hypotheses, and the review tasks showing them;
* :mod:`~skseg.annotation.estimators`: which estimator pre-annotates which task;
* :mod:`~skseg.annotation.tuning` and :mod:`~skseg.annotation.loop`: tuning on the
  corrections, once or while people annotate;
* :mod:`~skseg.annotation.labelstudio`: the same tasks and answers as Label
  Studio JSON;
* :mod:`~skseg.annotation.recipes`: the recipes (their components, and their
  arguments written once), and :mod:`~skseg.annotation.prodigy`, which registers
  them with Prodigy (imported lazily: Prodigy is commercial and optional).
"""

from .answers import ExportResult, collect_annotations, export
from .errors import error_regions, review_tasks
from .estimators import load_estimator
from .examples import before_db, to_file_time, validate_answer
from .labelstudio import from_labelstudio, labeling_config, to_labelstudio
from .loop import ModelInTheLoop
from .spans import annotation_to_spans, spans_to_annotation
from .tasks import chunk_regions, make_tasks
from .tuning import examples_to_dataset, tune_on_examples

__all__ = [
    "ExportResult",
    "ModelInTheLoop",
    "annotation_to_spans",
    "before_db",
    "chunk_regions",
    "collect_annotations",
    "error_regions",
    "examples_to_dataset",
    "export",
    "from_labelstudio",
    "labeling_config",
    "load_estimator",
    "make_tasks",
    "review_tasks",
    "spans_to_annotation",
    "to_file_time",
    "to_labelstudio",
    "tune_on_examples",
    "validate_answer",
]
