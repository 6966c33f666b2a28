"""Model in the loop: re-tune the pre-annotating estimator while people correct.

:class:`ModelInTheLoop` is a correction recipe's ``update`` callback. It keeps the
accepted answers (in file time) and, every ``every`` of them, re-tunes the
estimator's thresholds on all corrections so far
(:func:`~skseg.annotation.tuning.tune_on_examples`) and sets the best ones on the
estimator *in place*. The task stream (:func:`~skseg.annotation.tasks.make_tasks`)
is lazy and reads the estimator's parameters when it makes each task, so the tasks
made after a re-tuning are pre-annotated with the new thresholds. Tasks already
sent to the annotation tool (Prodigy keeps a batch or two ahead) keep the old ones.

Re-tuning costs no network pass for regions the stream already pre-annotated with
``context=None`` (whole-file scores, cached); with chunk context, each newly
corrected file is run through the network once, on its first re-tuning. A failed
re-tuning (too few corrections to cross-validate, say) is logged and the session
goes on with the current thresholds.

With ``fine_tune`` (a :class:`skseg.training.FineTuner`, say), each re-tuning
first fine-tunes the network on the corrections so far and sets it as the
estimator's ``segmentation``; the thresholds are then tuned for that network, and
the next tasks are pre-annotated by it. A failed fine-tuning is logged like a
failed re-tuning, and the estimator keeps its network and thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sklearn.base import clone

from ..exceptions import FileError
from .examples import to_file_time
from .tuning import examples_to_dataset, tune_on_examples

__all__ = ["ModelInTheLoop"]

logger = logging.getLogger(__name__)


class ModelInTheLoop:
    """Collect corrections and re-tune an estimator on them every ``every`` answers.

    Parameters
    ----------
    estimator : estimator
        The estimator the task stream pre-annotates with; its thresholds are
        updated in place with :meth:`~sklearn.base.BaseEstimator.set_params`.
    every : int, default=10
        Re-tune after this many new accepted answers (0: never).
    param_grid : dict, optional
        Grid for :func:`~skseg.annotation.tuning.tune_on_examples`.
    cv : int or splitter, optional
        Cross-validation for the same.
    fine_tune : callable, optional
        ``fine_tune(estimator, X, y) -> estimator`` (e.g.
        :class:`skseg.training.FineTuner`), run on the corrections (``X``: one
        file per corrected recording with its corrected regions as
        ``"annotated"``, ``y``: the corrections) before each re-tuning, on a
        clone of the estimator; the parameters of what it returns are then set on
        the estimator. None: thresholds only.

    Attributes
    ----------
    examples : list of dict
        Accepted answers so far, in file time.
    history : list of dict
        One entry per re-tuning: ``{"n_examples", "best_params", "best_score",
        "metric"}``, and with ``fine_tune`` the new network's ``weights_digest``.
    failures : list of str
        Answers that could not be used, and failed re-tunings, named.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> loop = ModelInTheLoop(VADEstimator(), every=0)
    >>> loop.update([{"answer": "accept", "meta": {"uri": "a", "start": 0.0,
    ...     "end": 10.0}, "audio_spans": [{"start": 1, "end": 2, "label": "SPEECH"}]}])
    >>> loop.examples[0]["audio_spans"], loop.history
    ([{'start': 1.0, 'end': 2.0, 'label': 'SPEECH'}], [])
    """

    def __init__(
        self,
        estimator: Any,
        every: int = 10,
        param_grid: Mapping[str, list] | None = None,
        cv: Any = None,
        fine_tune: Callable[[Any, list, list], Any] | None = None,
    ):
        self.estimator = estimator
        self.every = every
        self.param_grid = param_grid
        self.cv = cv
        self.fine_tune = fine_tune
        self.examples: list[dict] = []
        self.history: list[dict] = []
        self.failures: list[str] = []
        self._pending = 0

    def update(self, answers: Iterable[Mapping]) -> None:
        """Prodigy's ``update`` callback: take a batch of answers.

        Parameters
        ----------
        answers : iterable of mapping
            Answered tasks, as the annotation tool sends them (task time).
        """
        for answer in answers:
            if answer.get("answer", "accept") != "accept":
                continue
            try:
                self.examples.append(to_file_time(answer))
            except FileError as error:
                self.failures.append(str(error))
                logger.warning("correction not used: %s", error)
                continue
            self._pending += 1
        if self.every and self._pending >= self.every:
            self.retune()

    def retune(self) -> dict | None:
        """Re-tune on every correction so far and update the estimator.

        Returns
        -------
        entry : dict or None
            The new :attr:`history` entry, or None if re-tuning failed (the
            estimator then keeps its parameters).
        """
        self._pending = 0
        source = f"{len(self.examples)} corrections"
        candidate = self.estimator
        try:
            if self.fine_tune is not None:
                X, y = examples_to_dataset(self.examples, source=source)
                # on a clone: a failure leaves the estimator as it was
                candidate = self.fine_tune(clone(self.estimator), X, y)
            result = tune_on_examples(
                candidate,
                self.examples,
                param_grid=self.param_grid,
                cv=self.cv,
                source=source,
            )
        except Exception as error:  # noqa: BLE001 -- the session must go on
            what = "fine-tuning" if self.fine_tune is not None else "re-tuning"
            message = f"{what} on {source} failed: {error}"
            self.failures.append(message)
            logger.warning("%s; keeping the current network and thresholds", message)
            return None
        if candidate is not self.estimator:
            # in place: the task stream holds this estimator
            self.estimator.set_params(**candidate.get_params(deep=False))
        self.estimator.set_params(**result.best_params)
        entry = {
            "n_examples": len(self.examples),
            "best_params": dict(result.best_params),
            "best_score": result.best_score,
            "metric": result.metric,
        }
        if self.fine_tune is not None:
            # an in-memory network is named by its weights
            entry["weights_digest"] = getattr(
                self.estimator.segmentation, "weights_digest", None
            )
        self.history.append(entry)
        logger.info(
            "re-tuned on %d corrections: %s (%s %.4f)",
            entry["n_examples"],
            entry["best_params"],
            entry["metric"],
            entry["best_score"],
        )
        return entry
