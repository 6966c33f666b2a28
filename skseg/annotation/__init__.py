"""Annotating with a model in the loop: tasks, answers, export, Label Studio.

The logic of skseg's Prodigy recipes, testable and usable without Prodigy:

* :mod:`~skseg.annotation.tasks`: long files cut into chunks pre-annotated by an
  estimator (lazy, so later tasks see re-tuned thresholds);
* :mod:`~skseg.annotation.examples`: answers mapped back to file time before they
  are saved (``before_db``), answers validated;
* :mod:`~skseg.annotation.export`: accepted answers to annotations, RTTM and UEM;
* :mod:`~skseg.annotation.retune` and :mod:`~skseg.annotation.loop`: tuning on the
  corrections, once or while people annotate;
* :mod:`~skseg.annotation.review`: error regions between a reference and
  hypotheses;
* :mod:`~skseg.annotation.labelstudio`: the same tasks and answers as Label
  Studio JSON;
* :mod:`~skseg.annotation.recipes`: the recipes' components, and
  :mod:`~skseg.annotation.prodigy`, which registers them with Prodigy (imported
  lazily: Prodigy is commercial and optional).
"""

from .estimators import load_estimator
from .examples import before_db, to_file_time, validate_answer
from .export import ExportResult, collect_annotations, export
from .labelstudio import from_labelstudio, labeling_config, to_labelstudio
from .loop import ModelInTheLoop
from .retune import examples_to_dataset, tune_on_examples
from .review import error_regions, review_tasks
from .spans import annotation_to_spans, spans_to_annotation
from .tasks import chunk_regions, make_tasks

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
