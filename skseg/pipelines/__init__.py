"""The pipelines as scikit-learn estimators over one shared network."""

from .base import BaseSegmentationEstimator
from .diarization import DiarizationEstimator
from .loading import PIPELINES, load_pipeline, pipeline_name
from .osd import OSDEstimator
from .resegmentation import ResegmentationEstimator
from .segmentation import SegmentationEstimator
from .vad import VADEstimator

__all__ = [
    "BaseSegmentationEstimator",
    "DiarizationEstimator",
    "PIPELINES",
    "load_pipeline",
    "pipeline_name",
    "OSDEstimator",
    "ResegmentationEstimator",
    "SegmentationEstimator",
    "VADEstimator",
]
